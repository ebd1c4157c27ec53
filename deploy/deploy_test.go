// Package deploy_test checks what deploy/ ships, offline: no Docker engine
// and no cluster run here, so the Dockerfile, the compose file, the
// Kubernetes manifests and the .env examples are parsed strictly and held to
// the rules a reviewer would check by hand: pinned images, non-root users,
// probes on /healthz and /ready, secrets by reference, every setting one
// microshop reads and accepts, and network policies that open exactly the
// edges of DESIGN.md. Each check has a negative twin that feeds it a broken
// copy and expects the problem reported, so none of them can pass vacuously.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/microshop/microshop/internal/config"
)

// services are the microshop services deploy/ runs, each in its own
// container; the registry is not one of them (etcd or Kubernetes DNS).
var services = []string{"users", "catalog", "inventory", "orders", "payments", "shipping", "legacy", "gateway"}

// noBroker are the services with no broker connection: the legacy monolith
// publishes and consumes no events. They are given neither the broker's URL
// (its password) nor a way to it; every other service is given both.
var noBroker = map[string]bool{"legacy": true}

// calls are the services' HTTP calls to one another beyond those every
// service makes (the users service's JWKS, the console's span intake in the
// gateway) and the gateway's own (to every service).
var calls = map[string][]string{
	"orders": {"catalog", "payments"}, // prices; card checks
	"legacy": {"catalog"},             // prices (its calls to users, for a new customer's account, are on the JWKS edge)
}

// namespace is the shop's namespace in the Kubernetes manifests.
const namespace = "microshop"

// problems collects what a check finds wrong, one sentence each.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// expectClean fails the test with every problem found.
func expectClean(t *testing.T, what string, found problems) {
	t.Helper()
	for _, p := range found {
		t.Errorf("%s: %s", what, p)
	}
}

// expectReported fails the test unless some problem contains want: the
// negative twins' assertion.
func expectReported(t *testing.T, found problems, want string) {
	t.Helper()
	for _, p := range found {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("want a problem containing %q, got %q", want, found)
}

// mutate returns s with old replaced by new, failing the test if old is not
// in s: a negative twin whose mutation no longer applies must not pass by
// testing the unchanged file.
func mutate(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the mutation's target %q is not in the file any more; update the test", old)
	}
	return strings.Replace(s, old, new, 1)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --- settings: the names microshop reads, and whether it accepts values ---

// runtimeEnv are variables the Go runtime reads, not microshop's config.
var runtimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true}

// configNames is every environment variable config.Load reads, recorded as
// it asks for them: the list cannot fall behind the code.
func configNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	if _, err := config.Load(func(k string) string { names[k] = true; return "" }, nil); err != nil {
		t.Fatalf("the defaults do not load: %v", err)
	}
	if len(names) < 20 {
		t.Fatalf("config.Load asked for %d names; the recorder is broken", len(names))
	}
	return names
}

// loadEnv runs config.Load on env as a process would see it. Secret files
// (*_FILE) are not on this machine: each is replaced by a file holding a
// placeholder, so that only the shapes of the values are judged.
func loadEnv(t *testing.T, env map[string]string) error {
	t.Helper()
	dir := t.TempDir()
	vals := maps.Clone(env)
	for k := range vals {
		if strings.HasSuffix(k, "_FILE") && vals[k] != "" {
			f := filepath.Join(dir, k)
			if err := os.WriteFile(f, []byte("placeholder-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			vals[k] = f
		}
	}
	_, err := config.Load(func(k string) string { return vals[k] }, nil)
	return err
}

// unknownNames reports the names microshop does not read.
func unknownNames(names []string, known map[string]bool, where string) problems {
	var found problems
	for _, n := range names {
		if !known[n] && !runtimeEnv[n] {
			found.add("%s sets %s, which microshop does not read", where, n)
		}
	}
	return found
}

// --- .env examples ---

var (
	dotenvLine      = regexp.MustCompile(`^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$`)
	dotenvCommented = regexp.MustCompile(`^#\s*([A-Z_][A-Z0-9_]*)=`)
)

// parseDotenv returns a .env file's values, and the names of the settings
// it shows commented out.
func parseDotenv(text string) (values map[string]string, commented []string, err error) {
	values = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			if m := dotenvCommented.FindStringSubmatch(line); m != nil {
				commented = append(commented, m[1])
			}
		default:
			m := dotenvLine.FindStringSubmatch(line)
			if m == nil {
				return nil, nil, fmt.Errorf("line %d: want KEY=VALUE", n)
			}
			if _, dup := values[m[1]]; dup {
				return nil, nil, fmt.Errorf("line %d: %s set twice", n, m[1])
			}
			values[m[1]] = strings.Trim(m[2], `"'`)
		}
	}
	return values, commented, sc.Err()
}

// notInDevelopment are names config reads that mean nothing for a file to
// set: the gateway's listen address is MICROSHOP_ADDR, and neither the
// gateway nor the registry has a database.
var notInDevelopment = map[string]bool{"MICROSHOP_GATEWAY_ADDR": true, "MICROSHOP_GATEWAY_DB_URL": true, "MICROSHOP_REGISTRY_DB_URL": true}

// checkDevelopmentEnv holds .env.development to being the defaults written
// out: every setting shown, each at its default.
func checkDevelopmentEnv(t *testing.T, text string) problems {
	var found problems
	values, commented, err := parseDotenv(text)
	if err != nil {
		found.add("parsing: %v", err)
		return found
	}
	known := configNames(t)
	found = append(found, unknownNames(slices.Concat(slices.Collect(maps.Keys(values)), commented), known, ".env.development")...)
	for n := range known {
		if _, set := values[n]; !set && !slices.Contains(commented, n) && !notInDevelopment[n] {
			found.add(".env.development does not show %s", n)
		}
	}
	defaults, err := config.Load(func(string) string { return "" }, nil)
	if err != nil {
		found.add("the defaults do not load: %v", err)
		return found
	}
	got, err := config.Load(func(string) string { return "" }, strings.NewReader(text))
	if err != nil {
		found.add("config.Load refuses it: %v", err)
		return found
	}
	if !reflect.DeepEqual(got, defaults) {
		for n, v := range values {
			one, _ := config.Load(func(string) string { return "" }, strings.NewReader(n+"="+v))
			if !reflect.DeepEqual(one, defaults) {
				found.add(".env.development sets %s=%s, not the default", n, v)
			}
		}
	}
	return found
}

func TestDotenvDevelopment(t *testing.T) {
	expectClean(t, ".env.development", checkDevelopmentEnv(t, readFile(t, "../.env.development")))
}

func TestDotenvDevelopmentNegative(t *testing.T) {
	text := readFile(t, "../.env.development")
	for _, tc := range []struct{ name, old, new, want string }{
		{"not the default", "MICROSHOP_SAGA_MODE=orchestration", "MICROSHOP_SAGA_MODE=parallel", "MICROSHOP_SAGA_MODE=parallel, not the default"},
		{"unknown name", "MICROSHOP_REGISTRY_TTL=6s", "MICROSHOP_REGISTRY_TTL=6s\nMICROSHOP_REGISTY_TTL=6s", "MICROSHOP_REGISTY_TTL, which microshop does not read"},
		{"unknown commented name", "# MICROSHOP_REGISTRY_URL=", "# MICROSHOP_REGISTRY_URI=", "MICROSHOP_REGISTRY_URI"},
		{"setting left out", "MICROSHOP_BULKHEAD_SIZE=64\n", "", "does not show MICROSHOP_BULKHEAD_SIZE"},
		{"invalid value", "MICROSHOP_SAGA_MODE=orchestration", "MICROSHOP_SAGA_MODE=saga", "refuses it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectReported(t, checkDevelopmentEnv(t, mutate(t, text, tc.old, tc.new)), tc.want)
		})
	}
}

// placeholder is what stands for every secret in the examples.
const placeholder = "CHANGE_ME"

// checkSecretURL reports a URL in an example that carries a password other
// than the placeholder.
func checkSecretURL(where, raw string) problems {
	var found problems
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	if pw, ok := u.User.Password(); ok && pw != placeholder {
		found.add("%s holds a password that is not the placeholder %s", where, placeholder)
	}
	return found
}

// checkProductionEnv holds .env.production to names microshop reads, values
// it accepts, and placeholders for every secret.
func checkProductionEnv(t *testing.T, text string) problems {
	var found problems
	values, commented, err := parseDotenv(text)
	if err != nil {
		found.add("parsing: %v", err)
		return found
	}
	found = append(found, unknownNames(slices.Concat(slices.Collect(maps.Keys(values)), commented), configNames(t), ".env.production")...)
	for n, v := range values {
		found = append(found, checkSecretURL(n, v)...)
	}
	for _, secret := range []string{"MICROSHOP_ADMIN_PASSWORD"} {
		if v := values[secret]; v != "" && !strings.Contains(v, placeholder) {
			found.add("%s holds a value that is not a placeholder: use %s_FILE", secret, secret)
		}
	}
	for _, must := range []string{"MICROSHOP_REGISTRY_URL", "MICROSHOP_BROKER_URL", "MICROSHOP_SERVICE_KEY_FILE", "MICROSHOP_JWT_KEY_FILE"} {
		if values[must] == "" {
			found.add(".env.production does not set %s", must)
		}
	}
	for _, svc := range config.BusinessServices {
		if n := "MICROSHOP_" + strings.ToUpper(svc) + "_DB_URL"; values[n] == "" {
			found.add(".env.production does not set %s: production runs on no embedded database", n)
		}
	}
	if values["MICROSHOP_FAILPOINT"] != "" {
		found.add(".env.production sets MICROSHOP_FAILPOINT, for crash tests only")
	}
	if err := loadEnv(t, values); err != nil {
		found.add("config.Load refuses it: %v", err)
	}
	return found
}

func TestDotenvProduction(t *testing.T) {
	expectClean(t, ".env.production", checkProductionEnv(t, readFile(t, "../.env.production")))
}

func TestDotenvProductionNegative(t *testing.T) {
	text := readFile(t, "../.env.production")
	for _, tc := range []struct{ name, old, new, want string }{
		{"real password", "users:CHANGE_ME@", "users:hunter2hunter2@", "MICROSHOP_USERS_DB_URL holds a password"},
		{"unknown name", "LOG_LEVEL=info", "LOG_LEVELS=info", "LOG_LEVELS, which microshop does not read"},
		{"invalid broker", "MICROSHOP_BROKER_URL=amqps://", "MICROSHOP_BROKER_URL=kafka://", "refuses it"},
		{"embedded database", "MICROSHOP_ORDERS_DB_URL=mysql://orders:CHANGE_ME@mysql.internal:3306/orders\n", "", "MICROSHOP_ORDERS_DB_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectReported(t, checkProductionEnv(t, mutate(t, text, tc.old, tc.new)), tc.want)
		})
	}
}

// --- Dockerfile ---

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is one FROM and what follows it.
type stage struct {
	image, name string
	body        []instruction
}

func parseDockerfile(text string) ([]stage, error) {
	var (
		stages []stage
		joined strings.Builder
		start  int
	)
	lines := strings.Split(text, "\n")
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		if joined.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if joined.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if joined.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, `\`) {
			joined.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		joined.WriteString(line)
		cmd, args, _ := strings.Cut(joined.String(), " ")
		joined.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			if len(f) == 0 {
				return nil, fmt.Errorf("line %d: FROM without an image", in.line)
			}
			st := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	if joined.Len() > 0 {
		return nil, errors.New("the file ends inside a continued instruction")
	}
	return stages, nil
}

// imageTag returns an image reference's tag, or "" when it has none (a
// digest counts as a pin: it returns the digest).
func imageTag(ref string) string {
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		return digest
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if _, tag, ok := strings.Cut(last, ":"); ok {
		return tag
	}
	return ""
}

// checkImage reports an image that is not pinned to a tag or digest.
func checkImage(where, ref string) problems {
	var found problems
	switch tag := imageTag(ref); {
	case ref == "":
		found.add("%s has no image", where)
	case tag == "":
		found.add("%s: image %q has no tag (it means latest)", where, ref)
	case tag == "latest":
		found.add("%s: image %q is :latest", where, ref)
	}
	return found
}

// execForm parses a JSON-array instruction argument.
func execForm(args string) ([]string, bool) {
	var v []string
	return v, json.Unmarshal([]byte(args), &v) == nil
}

func checkDockerfile(text string) problems {
	var found problems
	stages, err := parseDockerfile(text)
	if err != nil {
		found.add("parsing: %v", err)
		return found
	}
	if len(stages) < 2 {
		found.add("%d stage(s): want a build stage and a runtime stage", len(stages))
		return found
	}
	names := map[string]int{}
	for i, st := range stages {
		if _, isStage := names[st.image]; !isStage {
			found = append(found, checkImage(fmt.Sprintf("stage %d", i+1), st.image)...)
		}
		if st.name != "" {
			names[st.name] = i
		}
		for _, in := range st.body {
			if in.cmd == "ADD" && regexp.MustCompile(`(?i)(^|\s)(https?://|git@)`).MatchString(in.args) {
				found.add("line %d: ADD of a URL; download nothing at build time that is not pinned and verified", in.line)
			}
		}
	}
	final := stages[len(stages)-1]
	if base := final.image; !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		found.add("the runtime image %q is not distroless/static or scratch", base)
	}
	var (
		user, entrypoint, cmd string
		exposed               bool
		copies                []instruction
	)
	for _, in := range final.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		case "EXPOSE":
			exposed = exposed || slices.Contains(strings.Fields(in.args), "8080") || slices.Contains(strings.Fields(in.args), "8080/tcp")
		case "COPY", "ADD":
			copies = append(copies, in)
		case "RUN":
			found.add("line %d: RUN in the runtime stage, which has no shell", in.line)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		found.add("the runtime stage runs as %q: want a non-root USER (65532)", user)
	}
	if ep, ok := execForm(entrypoint); !ok || !slices.Equal(ep, []string{"/microshop"}) {
		found.add(`ENTRYPOINT is %q: want ["/microshop"]`, entrypoint)
	}
	if c, ok := execForm(cmd); !ok || len(c) == 0 {
		found.add("CMD is %q: want a default command in exec form", cmd)
	}
	if !exposed {
		found.add("the runtime stage does not EXPOSE 8080")
	}
	build := -1
	for _, in := range copies {
		f := strings.Fields(in.args)
		from := ""
		var paths []string
		for _, a := range f {
			if v, ok := strings.CutPrefix(a, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(a, "--") {
				paths = append(paths, a)
			}
		}
		i, ok := names[from]
		if !ok {
			found.add("line %d: the runtime stage copies from %q, not from the build stage: copy the binary only", in.line, from)
			continue
		}
		build = i
		if len(paths) != 2 || path.Base(paths[0]) != "microshop" || paths[1] != "/microshop" {
			found.add("line %d: COPY --from=%s %s: want only the binary, to /microshop", in.line, from, strings.Join(paths, " "))
		}
	}
	if build < 0 {
		found.add("the runtime stage copies nothing from a build stage")
		return found
	}
	var cgoOff, goBuild bool
	for _, in := range stages[build].body {
		if (in.cmd == "ENV" || in.cmd == "RUN" || in.cmd == "ARG") && regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(in.args) {
			cgoOff = true
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = true
			if !strings.Contains(in.args, "-trimpath") {
				found.add("line %d: go build without -trimpath", in.line)
			}
			if !regexp.MustCompile(`-ldflags=?["']?-s -w`).MatchString(in.args) {
				found.add("line %d: go build without -ldflags=\"-s -w\"", in.line)
			}
		}
	}
	if !cgoOff {
		found.add("the build stage does not set CGO_ENABLED=0: the binary would not be static")
	}
	if !goBuild {
		found.add("the build stage runs no go build")
	}
	return found
}

func TestDockerfile(t *testing.T) {
	expectClean(t, "deploy/Dockerfile", checkDockerfile(readFile(t, "Dockerfile")))
}

func TestDockerfileNegative(t *testing.T) {
	text := readFile(t, "Dockerfile")
	for _, tc := range []struct{ name, old, new, want string }{
		{"latest builder", "FROM golang:1.26.10-bookworm AS build", "FROM golang:latest AS build", ":latest"},
		{"untagged builder", "FROM golang:1.26.10-bookworm AS build", "FROM golang AS build", "has no tag"},
		{"root", "USER 65532:65532", "USER root", "non-root USER"},
		{"no user", "USER 65532:65532\n", "", "non-root USER"},
		{"ADD of a URL", "COPY go.mod go.sum ./", "ADD https://example.com/x.tgz /x\nCOPY go.mod go.sum ./", "ADD of a URL"},
		{"cgo", "CGO_ENABLED=0 go build", "go build", "CGO_ENABLED=0"},
		{"symbols", `-ldflags="-s -w"`, "", "-s -w"},
		{"copies the tree", "COPY --from=build /out/microshop /microshop", "COPY --from=build /src /src", "want only the binary"},
		{"fat base", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:bookworm", "not distroless"},
		{"single stage", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/microshop /microshop\n", "", "want a build stage and a runtime stage"},
		{"binary not copied", "COPY --from=build /out/microshop /microshop\n", "", "copies nothing from a build stage"},
		{"shell entrypoint", `ENTRYPOINT ["/microshop"]`, "ENTRYPOINT /microshop", "ENTRYPOINT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectReported(t, checkDockerfile(mutate(t, text, tc.old, tc.new)), tc.want)
		})
	}
}

// --- Kubernetes manifests: strict decoding ---

// kustomization is the part of kustomize's Kustomization the manifests
// use; decoded strictly, a field outside it fails like a typo would.
type kustomization struct {
	APIVersion         string              `json:"apiVersion"`
	Kind               string              `json:"kind"`
	Namespace          string              `json:"namespace,omitempty"`
	Resources          []string            `json:"resources,omitempty"`
	Images             []kustomizeImage    `json:"images,omitempty"`
	Replicas           []kustomizeReplicas `json:"replicas,omitempty"`
	Patches            []kustomizePatch    `json:"patches,omitempty"`
	ConfigMapGenerator []kustomizeGen      `json:"configMapGenerator,omitempty"`
	SecretGenerator    []kustomizeGen      `json:"secretGenerator,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

type kustomizeReplicas struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

type kustomizePatch struct {
	Path   string           `json:"path,omitempty"`
	Patch  string           `json:"patch,omitempty"`
	Target *kustomizeTarget `json:"target,omitempty"`
}

type kustomizeTarget struct {
	Group         string `json:"group,omitempty"`
	Version       string `json:"version,omitempty"`
	Kind          string `json:"kind,omitempty"`
	Name          string `json:"name,omitempty"`
	LabelSelector string `json:"labelSelector,omitempty"`
}

type kustomizeGen struct {
	Name     string   `json:"name"`
	Behavior string   `json:"behavior,omitempty"`
	Literals []string `json:"literals,omitempty"`
	Files    []string `json:"files,omitempty"`
	Envs     []string `json:"envs,omitempty"`
	Options  *struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash,omitempty"`
	} `json:"options,omitempty"`
}

// jsonPatchOp is one operation of an RFC 6902 patch.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// newObject returns the typed object for a document's apiVersion and kind;
// any other kind is refused, so a manifest nobody checks cannot slip in.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &kustomization{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q of apiVersion %q", kind, apiVersion)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeDocuments decodes every YAML document of a file strictly into its
// typed object.
func decodeDocuments(data string) ([]any, error) {
	var objs []any
	for i, doc := range docSeparator.Split(data, -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			var rest map[string]any
			if err := yaml.Unmarshal([]byte(doc), &rest); err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("document %d has no apiVersion and kind", i+1)
			}
			continue // only comments
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// manifestFiles lists every YAML file under dir.
func manifestFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests under %s", dir)
	}
	return files
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for _, f := range manifestFiles(t, "k8s") {
		objs, err := decodeDocuments(readFile(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if len(objs) == 0 {
			t.Errorf("%s: no documents", f)
		}
	}
}

func TestManifestsDecodeStrictlyNegative(t *testing.T) {
	users := readFile(t, "k8s/base/users.yaml")
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", "  revisionHistoryLimit: 5", "  revisionHistoryLimit: 5\n  replica: 2", `unknown field "replica"`},
		{"misspelt nested field", "imagePullPolicy: IfNotPresent", "imagePullPolicyy: IfNotPresent", "imagePullPolicyy"},
		{"unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgett", "unknown kind"},
		{"kind of another version", "apiVersion: autoscaling/v2", "apiVersion: autoscaling/v1", "unknown kind"},
		{"duplicate key", "  revisionHistoryLimit: 5", "  revisionHistoryLimit: 5\n  revisionHistoryLimit: 6", "revisionHistoryLimit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDocuments(mutate(t, users, tc.old, tc.new))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	_, err := decodeDocuments(mutate(t, readFile(t, "k8s/base/kustomization.yaml"), "resources:", "resourcess:"))
	if err == nil || !strings.Contains(err.Error(), "resourcess") {
		t.Errorf("a misspelt kustomization field: got %v, want it refused", err)
	}
}

// --- Kubernetes manifests: what they say ---

// tree is the decoded objects of a kustomization directory, by kind and
// name, with the file each came from.
type tree struct {
	dir           string
	kustomization *kustomization
	deployments   map[string]*appsv1.Deployment
	services      map[string]*corev1.Service
	configMaps    map[string]*corev1.ConfigMap
	secrets       map[string]*corev1.Secret
	pdbs          map[string]*policyv1.PodDisruptionBudget
	hpas          map[string]*autoscalingv2.HorizontalPodAutoscaler
	policies      []*networkingv1.NetworkPolicy
	namespaces    []*corev1.Namespace
}

// loadTree decodes dir's kustomization.yaml and the resources it lists that
// are files in dir; texts, when set, stands in for files' contents (the
// negative twins' broken copies).
func loadTree(t *testing.T, dir string, texts map[string]string) *tree {
	t.Helper()
	tr := newTree(dir)
	read := func(name string) string {
		if s, ok := texts[name]; ok {
			return s
		}
		return readFile(t, filepath.Join(dir, name))
	}
	objs, err := decodeDocuments(read("kustomization.yaml"))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	k, ok := objs[0].(*kustomization)
	if !ok {
		t.Fatalf("%s/kustomization.yaml is not a Kustomization", dir)
	}
	tr.kustomization = k
	for _, r := range k.Resources {
		if st, err := os.Stat(filepath.Join(dir, r)); err != nil || st.IsDir() {
			continue // another kustomization, or missing: checkKustomization says so
		}
		objs, err := decodeDocuments(read(r))
		if err != nil {
			t.Fatalf("%s/%s: %v", dir, r, err)
		}
		tr.add(objs)
	}
	return tr
}

func newTree(dir string) *tree {
	return &tree{dir: dir, deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}}
}

// add files decoded objects by kind and name.
func (tr *tree) add(objs []any) {
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			tr.deployments[o.Name] = o
		case *corev1.Service:
			tr.services[o.Name] = o
		case *corev1.ConfigMap:
			tr.configMaps[o.Name] = o
		case *corev1.Secret:
			tr.secrets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			tr.pdbs[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			tr.hpas[o.Name] = o
		case *networkingv1.NetworkPolicy:
			tr.policies = append(tr.policies, o)
		case *corev1.Namespace:
			tr.namespaces = append(tr.namespaces, o)
		}
	}
}

// secretKeys returns a Secret's keys with their values.
func secretKeys(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	maps.Copy(out, s.StringData)
	return out
}

// selects reports whether a label selector picks a set of labels.
func selects(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

// containerPort returns the number of a container's port given as a
// number or a name, or 0.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkProbe reports a probe that is not an HTTP GET of path on port 8080.
func checkProbe(where string, c corev1.Container, p *corev1.Probe, wantPath string) problems {
	var found problems
	switch {
	case p == nil:
		found.add("%s has no %s probe", where, wantPath)
	case p.HTTPGet == nil:
		found.add("%s: the %s probe is not an HTTP GET", where, wantPath)
	case p.HTTPGet.Path != wantPath:
		found.add("%s probes %s, want %s", where, p.HTTPGet.Path, wantPath)
	case containerPort(c, p.HTTPGet.Port) != 8080:
		found.add("%s probes %s on port %s, not the container's 8080", where, wantPath, p.HTTPGet.Port.String())
	}
	return found
}

// checkContainerBasics holds any container to a pinned image, requests and
// limits, and a locked-down security context.
func checkContainerBasics(where string, pod corev1.PodSpec, c corev1.Container) problems {
	found := checkImage(where, c.Image)
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			found.add("%s has no %s request", where, r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			found.add("%s has no %s limit", where, r)
		}
	}
	sc := c.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot)
	if !nonRoot {
		found.add("%s may run as root: set runAsNonRoot", where)
	}
	if pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser == 0 {
		found.add("%s runs as uid 0", where)
	}
	if sc == nil {
		found.add("%s has no securityContext", where)
		return found
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		found.add("%s: the root file system is writable", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		found.add("%s allows privilege escalation", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		found.add("%s does not drop ALL capabilities", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		found.add("%s is privileged", where)
	}
	return found
}

// containerEnv resolves a container's environment as the kubelet would,
// from the tree's ConfigMaps and Secrets, reporting every reference to a
// ConfigMap, Secret or key that does not exist.
func containerEnv(where string, tr *tree, c corev1.Container) (map[string]string, problems) {
	var found problems
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := tr.configMaps[from.ConfigMapRef.Name]
			if !ok {
				found.add("%s takes its environment from ConfigMap %s, which does not exist", where, from.ConfigMapRef.Name)
				continue
			}
			maps.Copy(env, cm.Data)
		case from.SecretRef != nil:
			found.add("%s takes a whole Secret as environment: reference each key with secretKeyRef", where)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := tr.secrets[ref.Name]
			if !ok {
				found.add("%s: %s refers to Secret %s, which does not exist", where, e.Name, ref.Name)
				continue
			}
			v, ok := secretKeys(s)[ref.Key]
			if !ok {
				found.add("%s: %s refers to key %s, which Secret %s does not have", where, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = map[string]string{"status.podIP": "10.1.0.1"}[e.ValueFrom.FieldRef.FieldPath]
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "268435456"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := tr.configMaps[ref.Name]
			if !ok {
				found.add("%s: %s refers to ConfigMap %s, which does not exist", where, e.Name, ref.Name)
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				found.add("%s: %s refers to key %s, which ConfigMap %s does not have", where, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		}
	}
	return env, found
}

// mountedFiles returns the files a container sees from Secret volumes, and
// the folders it may write to.
func mountedFiles(where string, tr *tree, pod corev1.PodSpec, c corev1.Container) (files map[string]bool, writable []string, found problems) {
	files = map[string]bool{}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			found.add("%s mounts volume %s, which the pod does not have", where, m.Name)
			continue
		}
		switch {
		case v.Secret != nil:
			s, ok := tr.secrets[v.Secret.SecretName]
			if !ok {
				found.add("%s mounts Secret %s, which does not exist", where, v.Secret.SecretName)
				continue
			}
			if m.SubPath != "" {
				found.add("%s mounts Secret %s with subPath: a replaced Secret would never reach the pod", where, v.Secret.SecretName)
			}
			keys := secretKeys(s)
			if len(v.Secret.Items) == 0 {
				found.add("%s mounts every key of Secret %s: mount only the files it needs", where, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if _, ok := keys[it.Key]; !ok {
					found.add("%s mounts key %s, which Secret %s does not have", where, it.Key, v.Secret.SecretName)
				}
				files[path.Join(m.MountPath, it.Path)] = true
			}
		case v.EmptyDir != nil && !m.ReadOnly:
			writable = append(writable, m.MountPath)
		}
	}
	return files, writable, found
}

// checkServiceDeployment holds a microshop service's Deployment to the
// shop's rules, with the ConfigMaps and Secrets of tr.
func checkServiceDeployment(t *testing.T, tr *tree, name string) problems {
	var found problems
	d, ok := tr.deployments[name]
	if !ok {
		found.add("no Deployment %s", name)
		return found
	}
	where := "Deployment " + name
	pod := d.Spec.Template.Spec
	if !selects(d.Spec.Selector, d.Spec.Template.Labels) {
		found.add("%s: its selector does not pick its own pods", where)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		found.add("%s mounts a service account token it never uses", where)
	}
	if len(pod.Containers) != 1 {
		found.add("%s has %d containers, want 1", where, len(pod.Containers))
		return found
	}
	c := pod.Containers[0]
	where += " container " + c.Name
	found = append(found, checkContainerBasics(where, pod, c)...)
	if !slices.Equal(c.Args, []string{"serve", "--services=" + name}) {
		found.add("%s runs %q, want serve --services=%s", where, c.Args, name)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Ports[0].Name != "http" {
		found.add("%s: want one port, 8080, named http (the SRV records' name)", where)
	}
	found = append(found, checkProbe(where, c, c.LivenessProbe, "/healthz")...)
	found = append(found, checkProbe(where, c, c.ReadinessProbe, "/ready")...)
	if c.StartupProbe != nil {
		found = append(found, checkProbe(where+" (startup)", c, c.StartupProbe, "/healthz")...)
	}

	env, refs := containerEnv(where, tr, c)
	found = append(found, refs...)
	found = append(found, unknownNames(slices.Collect(maps.Keys(env)), configNames(t), where)...)
	for _, e := range c.Env {
		if e.ValueFrom == nil && (strings.Contains(e.Name, "PASSWORD") || strings.HasSuffix(e.Name, "_DB_URL") || e.Name == "MICROSHOP_BROKER_URL") {
			found.add("%s sets %s in plain text: take it from a Secret with secretKeyRef", where, e.Name)
		}
	}
	addrVar := "MICROSHOP_" + strings.ToUpper(name) + "_ADDR"
	if name == "gateway" {
		addrVar = "MICROSHOP_ADDR"
	}
	if env[addrVar] != "0.0.0.0:8080" {
		found.add("%s: %s is %q, want 0.0.0.0:8080", where, addrVar, env[addrVar])
	}
	found = append(found, checkBrokerEnv(where, name, env)...)
	for n := range env {
		if strings.HasSuffix(n, "_DB_URL") && n != "MICROSHOP_"+strings.ToUpper(name)+"_DB_URL" {
			found.add("%s is given %s: a service reads only its own database", where, n)
		}
	}
	if u := env["MICROSHOP_REGISTRY_URL"]; u != "kubernetes://"+tr.kustomization.Namespace && tr.kustomization.Namespace != "" {
		found.add("%s: MICROSHOP_REGISTRY_URL is %q, but the namespace is %s", where, u, tr.kustomization.Namespace)
	}
	files, writable, mounts := mountedFiles(where, tr, pod, c)
	found = append(found, mounts...)
	wantFiles := []string{"MICROSHOP_SERVICE_KEY_FILE"}
	if name == "users" {
		wantFiles = append(wantFiles, "MICROSHOP_JWT_KEY_FILE")
	}
	for _, n := range wantFiles {
		if !files[env[n]] {
			found.add("%s: %s is %q, which is not a mounted Secret file", where, n, env[n])
		}
	}
	if name != "users" && files[env["MICROSHOP_JWT_KEY_FILE"]] {
		found.add("%s can read the users service's signing keys", where)
	}
	if dir := env["MICROSHOP_DATA_DIR"]; !slices.Contains(writable, dir) {
		found.add("%s: MICROSHOP_DATA_DIR %q is not a writable volume (the root file system is read-only)", where, dir)
	}
	if err := loadEnv(t, env); err != nil {
		found.add("%s: microshop refuses its environment: %v", where, err)
	}
	return found
}

// checkBrokerEnv holds a service's environment to its broker connection:
// the broker's URL for a service that has one, and none (nor the password
// in it) for a service that has none.
func checkBrokerEnv(where, name string, env map[string]string) problems {
	var found problems
	_, given := env["MICROSHOP_BROKER_URL"]
	switch {
	case noBroker[name] && given:
		found.add("%s is given MICROSHOP_BROKER_URL, but it has no broker connection", where)
	case !noBroker[name] && !given:
		found.add("%s is not given MICROSHOP_BROKER_URL: it would dial an embedded broker on its own loopback", where)
	}
	return found
}

// checkServiceObjects holds the Service, PodDisruptionBudget, autoscaler
// and network policy of a microshop service to pick its Deployment's pods.
func checkServiceObjects(tr *tree, name string) problems {
	var found problems
	d, ok := tr.deployments[name]
	if !ok {
		found.add("no Deployment %s", name)
		return found
	}
	pods := d.Spec.Template.Labels
	if s, ok := tr.services[name]; !ok {
		found.add("no Service %s", name)
	} else {
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			found.add("Service %s is not headless: Kubernetes DNS discovery needs the pods' own records", name)
		}
		if !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, pods) || len(s.Spec.Selector) == 0 {
			found.add("Service %s does not select Deployment %s's pods", name, name)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP ||
			containerPort(d.Spec.Template.Spec.Containers[0], s.Spec.Ports[0].TargetPort) != 8080 {
			found.add("Service %s: want one TCP port named http to the container's 8080 (SRV _http._tcp)", name)
		}
	}
	if p, ok := tr.pdbs[name]; !ok {
		found.add("no PodDisruptionBudget %s", name)
	} else if !selects(p.Spec.Selector, pods) {
		found.add("PodDisruptionBudget %s does not select Deployment %s's pods", name, name)
	}
	if h, ok := tr.hpas[name]; !ok {
		found.add("no HorizontalPodAutoscaler %s", name)
	} else {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != name {
			found.add("HorizontalPodAutoscaler %s scales %s %s", name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			found.add("HorizontalPodAutoscaler %s: minReplicas unset or above maxReplicas", name)
		}
	}
	selected := false
	for _, p := range tr.policies {
		selected = selected || (len(p.Spec.PodSelector.MatchLabels)+len(p.Spec.PodSelector.MatchExpressions) > 0 && selects(&p.Spec.PodSelector, pods))
	}
	if !selected {
		found.add("no NetworkPolicy of its own selects %s's pods", name)
	}
	return found
}

func TestBaseServices(t *testing.T) {
	tr := loadTree(t, "k8s/base", nil)
	for _, name := range services {
		expectClean(t, name, checkServiceDeployment(t, tr, name))
		expectClean(t, name, checkServiceObjects(tr, name))
	}
	for name := range tr.deployments {
		if !slices.Contains(services, name) {
			t.Errorf("Deployment %s is not a microshop service; the base deploys only those", name)
		}
	}
	for name, cm := range tr.configMaps {
		expectClean(t, "ConfigMap "+name, unknownNames(slices.Collect(maps.Keys(cm.Data)), configNames(t), "ConfigMap "+name))
	}
	for name, s := range tr.secrets {
		for k, v := range secretKeys(s) {
			if !strings.Contains(v, placeholder) {
				t.Errorf("Secret %s key %s is not a placeholder (%s): the base is a template", name, k, placeholder)
			}
		}
	}
}

func TestBaseServicesNegative(t *testing.T) {
	users := readFile(t, "k8s/base/users.yaml")
	config := readFile(t, "k8s/base/config.yaml")
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"latest image", "users.yaml", "ghcr.io/microshop/microshop:0.6.0", "ghcr.io/microshop/microshop:latest", ":latest"},
		{"untagged image", "users.yaml", "ghcr.io/microshop/microshop:0.6.0", "ghcr.io/microshop/microshop", "has no tag"},
		{"no readiness probe", "users.yaml", "          readinessProbe:\n            httpGet:\n              path: /ready\n              port: http\n            periodSeconds: 5\n            timeoutSeconds: 2\n            failureThreshold: 2\n", "", "no /ready probe"},
		{"liveness on the wrong path", "users.yaml", "          livenessProbe:\n            httpGet:\n              path: /healthz", "          livenessProbe:\n            httpGet:\n              path: /health", "probes /health, want /healthz"},
		{"probe on another port", "users.yaml", "          readinessProbe:\n            httpGet:\n              path: /ready\n              port: http", "          readinessProbe:\n            httpGet:\n              path: /ready\n              port: 9090", "on port 9090"},
		{"no limits", "users.yaml", "            limits:\n              cpu: \"1\"\n              memory: 256Mi\n", "", "no cpu limit"},
		{"writable root", "users.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "root file system is writable"},
		{"escalation", "users.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "privilege escalation"},
		{"capabilities", "users.yaml", "drop: [ALL]", "drop: [NET_RAW]", "drop ALL"},
		{"uid 0", "users.yaml", "        runAsNonRoot: true\n        runAsUser: 65532", "        runAsNonRoot: false\n        runAsUser: 0", "runs as uid 0"},
		{"missing secret key", "users.yaml", "key: users-db-url", "key: user-db-url", "does not have"},
		{"missing secret", "users.yaml", "                  name: microshop-secrets\n                  key: users-db-url", "                  name: microshop-secret\n                  key: users-db-url", "Secret microshop-secret, which does not exist"},
		{"missing config map", "users.yaml", "name: microshop-config", "name: microshop-conf", "ConfigMap microshop-conf"},
		{"plain-text secret", "users.yaml", "            - name: MICROSHOP_ADMIN_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: microshop-secrets\n                  key: admin-password", "            - name: MICROSHOP_ADMIN_PASSWORD\n              value: hunter2hunter2", "in plain text"},
		{"unknown variable", "users.yaml", "- name: MICROSHOP_USERS_ADDR", "- name: MICROSHOP_USER_ADDR", "MICROSHOP_USER_ADDR, which microshop does not read"},
		{"key file not mounted", "users.yaml", "              - key: jwt-ed25519.pem\n                path: jwt-ed25519.pem\n", "", "MICROSHOP_JWT_KEY_FILE"},
		{"invalid setting", "config.yaml", `MICROSHOP_SAGA_MODE: "orchestration"`, `MICROSHOP_SAGA_MODE: "saga"`, "refuses its environment"},
		{"wrong command", "users.yaml", `args: ["serve", "--services=users"]`, `args: ["up"]`, "want serve --services=users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			texts := map[string]string{"users.yaml": users, "config.yaml": config}
			texts[tc.file] = mutate(t, texts[tc.file], tc.old, tc.new)
			expectReported(t, checkServiceDeployment(t, loadTree(t, "k8s/base", texts), "users"), tc.want)
		})
	}
	t.Run("broker for the monolith", func(t *testing.T) {
		text := mutate(t, readFile(t, "k8s/base/legacy.yaml"), "            # No MICROSHOP_BROKER_URL:", "            - name: MICROSHOP_BROKER_URL\n              valueFrom:\n                secretKeyRef:\n                  name: microshop-secrets\n                  key: broker-url\n            # No MICROSHOP_BROKER_URL:")
		expectReported(t, checkServiceDeployment(t, loadTree(t, "k8s/base", map[string]string{"legacy.yaml": text}), "legacy"), "has no broker connection")
	})
	t.Run("no broker for users", func(t *testing.T) {
		text := mutate(t, users, "            - name: MICROSHOP_BROKER_URL\n              valueFrom:\n                secretKeyRef:\n                  name: microshop-secrets\n                  key: broker-url\n", "")
		expectReported(t, checkServiceDeployment(t, loadTree(t, "k8s/base", map[string]string{"users.yaml": text}), "users"), "is not given MICROSHOP_BROKER_URL")
	})
	t.Run("may run as root", func(t *testing.T) {
		text := mutate(t, users, "          securityContext:\n            runAsNonRoot: true\n", "          securityContext:\n")
		text = mutate(t, text, "        runAsNonRoot: true\n        runAsUser: 65532", "        runAsUser: 65532")
		expectReported(t, checkServiceDeployment(t, loadTree(t, "k8s/base", map[string]string{"users.yaml": text}), "users"), "may run as root")
	})
	for _, tc := range []struct{ name, old, new, want string }{
		{"service not headless", "  clusterIP: None\n", "", "not headless"},
		{"service selects nothing", "spec:\n  clusterIP: None\n  selector:\n    app.kubernetes.io/name: users", "spec:\n  clusterIP: None\n  selector:\n    app.kubernetes.io/name: user", "does not select"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := mutate(t, users, tc.old, tc.new)
			expectReported(t, checkServiceObjects(loadTree(t, "k8s/base", map[string]string{"users.yaml": text}), "users"), tc.want)
		})
	}
	t.Run("no autoscaler", func(t *testing.T) {
		docs := slices.DeleteFunc(docSeparator.Split(users, -1), func(d string) bool { return strings.Contains(d, "kind: HorizontalPodAutoscaler") })
		text := strings.Join(docs, "---")
		expectReported(t, checkServiceObjects(loadTree(t, "k8s/base", map[string]string{"users.yaml": text}), "users"), "no HorizontalPodAutoscaler users")
	})
}

// --- network policies ---

// peer is a pod (or an address outside the cluster) the policies are
// evaluated for.
type peer struct {
	name      string
	namespace string // "": outside the cluster
	nsLabels  map[string]string
	labels    map[string]string
	ip        netip.Addr
	ports     []corev1.ContainerPort // what it listens on
}

func peerMatches(np networkingv1.NetworkPolicyPeer, policyNS string, p peer) bool {
	if np.IPBlock != nil {
		prefix, err := netip.ParsePrefix(np.IPBlock.CIDR)
		if err != nil || !prefix.Contains(p.ip) {
			return false
		}
		for _, ex := range np.IPBlock.Except {
			if e, err := netip.ParsePrefix(ex); err == nil && e.Contains(p.ip) {
				return false
			}
		}
		return true
	}
	if p.namespace == "" {
		return false // selectors pick pods, never addresses outside
	}
	if np.NamespaceSelector == nil {
		if p.namespace != policyNS {
			return false
		}
	} else if !selects(np.NamespaceSelector, p.nsLabels) {
		return false
	}
	return np.PodSelector == nil || selects(np.PodSelector, p.labels)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, cp corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		cpProto := cp.Protocol
		if cpProto == "" {
			cpProto = corev1.ProtocolTCP
		}
		if proto != cpProto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if p.Port.StrVal == cp.Name {
				return true
			}
		case p.EndPort != nil:
			if cp.ContainerPort >= p.Port.IntVal && cp.ContainerPort <= *p.EndPort {
				return true
			}
		case p.Port.IntVal == cp.ContainerPort:
			return true
		}
	}
	return false
}

func policyTypes(p *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(p.Spec.PolicyTypes) == 0 {
		return true, len(p.Spec.Egress) > 0
	}
	return slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress), slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
}

// allowed evaluates the policies of namespace ns, as a CNI does, for a
// connection from src to dst's port: each end's policies must allow it,
// where any policy selects that end.
func allowed(policies []*networkingv1.NetworkPolicy, ns string, src, dst peer, port corev1.ContainerPort) bool {
	egressOK, ingressOK := true, true
	if src.namespace == ns {
		isolated, ok := false, false
		for _, p := range policies {
			if _, eg := policyTypes(p); !eg || !selects(&p.Spec.PodSelector, src.labels) {
				continue
			}
			isolated = true
			for _, r := range p.Spec.Egress {
				if (len(r.To) == 0 || slices.ContainsFunc(r.To, func(np networkingv1.NetworkPolicyPeer) bool { return peerMatches(np, ns, dst) })) && portMatches(r.Ports, port) {
					ok = true
				}
			}
		}
		egressOK = !isolated || ok
	}
	if dst.namespace == ns {
		isolated, ok := false, false
		for _, p := range policies {
			if in, _ := policyTypes(p); !in || !selects(&p.Spec.PodSelector, dst.labels) {
				continue
			}
			isolated = true
			for _, r := range p.Spec.Ingress {
				if (len(r.From) == 0 || slices.ContainsFunc(r.From, func(np networkingv1.NetworkPolicyPeer) bool { return peerMatches(np, ns, src) })) && portMatches(r.Ports, port) {
					ok = true
				}
			}
		}
		ingressOK = !isolated || ok
	}
	return egressOK && ingressOK
}

// edges is every (from, to) pair the policies let connect on some port. Pairs
// with neither end in the namespace are none of its policies' business.
func edges(policies []*networkingv1.NetworkPolicy, ns string, peers []peer) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, src := range peers {
		for _, dst := range peers {
			if src.name == dst.name || (src.namespace != ns && dst.namespace != ns) {
				continue
			}
			for _, port := range dst.ports {
				if allowed(policies, ns, src, dst, port) {
					out[[2]string{src.name, dst.name}] = true
				}
			}
		}
	}
	return out
}

// dbPorts are the ports of each service's database in the production
// overlay, read from its URL.
func dbPorts(t *testing.T) map[string]int32 {
	t.Helper()
	values, _, err := parseDotenv(readFile(t, "k8s/overlays/prod/secrets.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, svc := range config.BusinessServices {
		u, err := url.Parse(values[svc+"-db-url"])
		if err != nil || u.Port() == "" {
			t.Fatalf("secrets.env.example: %s-db-url has no port", svc)
		}
		var port int32
		fmt.Sscan(u.Port(), &port)
		out[svc] = port
	}
	return out
}

// clusterPeers is the world the policies are evaluated in: the services as
// their Deployments label them; the dev overlay's broker; each service's
// database and Prometheus in namespaces of their own; kube-dns; an address
// on the internet; and two pods that must reach nothing: a stranger in the
// shop's namespace and a pod called gateway in another namespace.
func clusterPeers(t *testing.T, tr *tree) []peer {
	t.Helper()
	nsLabels := func(ns string) map[string]string { return map[string]string{"kubernetes.io/metadata.name": ns} }
	var peers []peer
	for i, name := range services {
		d := tr.deployments[name]
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		peers = append(peers, peer{name: name, namespace: namespace, nsLabels: nsLabels(namespace), labels: d.Spec.Template.Labels,
			ip: netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), ports: d.Spec.Template.Spec.Containers[0].Ports})
	}
	nats := loadTree(t, "k8s/overlays/dev", nil).deployments["nats"]
	if nats == nil {
		t.Fatal("the dev overlay has no nats Deployment")
	}
	peers = append(peers, peer{name: "broker", namespace: namespace, nsLabels: nsLabels(namespace), labels: nats.Spec.Template.Labels,
		ip: netip.MustParseAddr("10.1.1.1"), ports: []corev1.ContainerPort{{ContainerPort: 4222}, {ContainerPort: 5672}}})
	for i, svc := range config.BusinessServices {
		peers = append(peers, peer{name: "db:" + svc, namespace: "databases", nsLabels: nsLabels("databases"),
			labels: map[string]string{"microshop.io/role": "database", "microshop.io/owner": svc},
			ip:     netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}), ports: []corev1.ContainerPort{{ContainerPort: dbPorts(t)[svc]}}})
	}
	return append(peers,
		peer{name: "prometheus", namespace: "monitoring", nsLabels: nsLabels("monitoring"), labels: map[string]string{"app.kubernetes.io/name": "prometheus"},
			ip: netip.MustParseAddr("10.3.0.1"), ports: []corev1.ContainerPort{{ContainerPort: 9090}}},
		peer{name: "dns", namespace: "kube-system", nsLabels: nsLabels("kube-system"), labels: map[string]string{"k8s-app": "kube-dns"},
			ip: netip.MustParseAddr("10.4.0.10"), ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 53, Protocol: corev1.ProtocolTCP}}},
		peer{name: "internet", ip: netip.MustParseAddr("203.0.113.9"), ports: []corev1.ContainerPort{{ContainerPort: 443}}},
		peer{name: "stranger", namespace: namespace, nsLabels: nsLabels(namespace), labels: map[string]string{"app": "stranger"},
			ip: netip.MustParseAddr("10.1.2.1"), ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
		peer{name: "impostor", namespace: "default", nsLabels: nsLabels("default"), labels: map[string]string{"app.kubernetes.io/name": "gateway", "app.kubernetes.io/part-of": "microshop", "app.kubernetes.io/component": "service"},
			ip: netip.MustParseAddr("10.5.0.1"), ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
	)
}

// designEdges are the connections DESIGN.md's services make, and no more:
// the table the policies must produce exactly.
func designEdges(peers []peer) map[[2]string]bool {
	want := map[[2]string]bool{}
	add := func(from, to string) { want[[2]string{from, to}] = true }
	for _, p := range peers {
		if p.namespace != namespace {
			add(p.name, "gateway") // the public entrance: anyone outside the namespace
		}
	}
	for _, s := range services {
		if s != "gateway" {
			add("gateway", s) // the gateway routes to every service
			add(s, "gateway") // every service's spans reach the console in the gateway
		}
		if s != "users" {
			add(s, "users") // every service fetches the users service's JWKS
		}
		if !noBroker[s] {
			add(s, "broker")
		}
		add(s, "dns")
		add("prometheus", s) // /metrics
		for _, to := range calls[s] {
			add(s, to)
		}
	}
	for _, s := range config.BusinessServices {
		add(s, "db:"+s) // its own database, no other
	}
	return want
}

// checkEdges compares the edges the policies allow with DESIGN.md's.
func checkEdges(t *testing.T, tr *tree) problems {
	var found problems
	peers := clusterPeers(t, tr)
	got, want := edges(tr.policies, namespace, peers), designEdges(peers)
	for e := range got {
		if !want[e] {
			found.add("the policies let %s connect to %s, an edge DESIGN.md does not have", e[0], e[1])
		}
	}
	for e := range want {
		if !got[e] {
			found.add("the policies refuse %s → %s, an edge DESIGN.md needs", e[0], e[1])
		}
	}
	return found
}

func TestNetworkPolicies(t *testing.T) {
	tr := loadTree(t, "k8s/base", nil)
	found := checkEdges(t, tr)
	expectClean(t, "network policies", found)
	if len(found) == 0 {
		t.Logf("%d edges allowed, exactly DESIGN.md's", len(designEdges(clusterPeers(t, tr))))
	}
}

func TestNetworkPoliciesNegative(t *testing.T) {
	users := readFile(t, "k8s/base/users.yaml")
	shared := readFile(t, "k8s/base/networkpolicies.yaml")
	gateway := readFile(t, "k8s/base/gateway.yaml")
	legacy := readFile(t, "k8s/base/legacy.yaml")
	for _, tc := range []struct{ name, file, old, new, want string }{
		{"egress to the internet", "users.yaml", "  egress:\n", "  egress:\n    - to:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n", "users connect to internet"},
		{"any namespace", "users.yaml", "    - from:\n        - podSelector:\n", "    - from:\n        - namespaceSelector: {}\n          podSelector:\n", "impostor connect to users"},
		{"no default deny", "networkpolicies.yaml", "  podSelector: {}\n  policyTypes: [Ingress, Egress]", "  podSelector:\n    matchLabels:\n      nothing: here\n  policyTypes: [Ingress, Egress]", "stranger connect to"},
		{"no dns", "networkpolicies.yaml", "              k8s-app: kube-dns", "              k8s-app: kube-dnz", "refuse users → dns"},
		{"closed gateway", "gateway.yaml", "    - ports:\n        - protocol: TCP\n          port: 8080\n", "    - from:\n        - podSelector: {}\n      ports:\n        - protocol: TCP\n          port: 8080\n", "refuse internet → gateway"},
		{"wrong database port", "users.yaml", "          port: 5432", "          port: 3306", "refuse users → db:users"},
		{"broker for the monolith", "legacy.yaml", "    # No broker: the monolith sends and takes no events.\n", "    - to:\n        - namespaceSelector: {}\n          podSelector:\n            matchLabels:\n              microshop.io/role: broker\n      ports:\n        - protocol: TCP\n          port: 4222\n", "legacy connect to broker"},
		{"monolith open beyond the gateway", "legacy.yaml", "    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: gateway\n", "    - from:\n        - namespaceSelector: {}\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: gateway\n", "impostor connect to legacy"},
		{"monolith without prices", "legacy.yaml", "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: catalog\n", "", "refuse legacy → catalog"},
		{"monolith without its database", "legacy.yaml", "              microshop.io/owner: legacy", "              microshop.io/owner: users", "refuse legacy → db:legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			texts := map[string]string{"users.yaml": users, "networkpolicies.yaml": shared, "gateway.yaml": gateway, "legacy.yaml": legacy}
			texts[tc.file] = mutate(t, texts[tc.file], tc.old, tc.new)
			expectReported(t, checkEdges(t, loadTree(t, "k8s/base", texts)), tc.want)
		})
	}
}

// --- kustomizations ---

// checkBaseKustomization holds the base to listing every manifest in its
// folder, and only those.
func checkBaseKustomization(tr *tree) problems {
	var found problems
	k := tr.kustomization
	if k.Namespace == "" {
		found.add("the base sets no namespace")
	}
	entries, _ := os.ReadDir(tr.dir)
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "kustomization.yaml" {
			files = append(files, e.Name())
		}
	}
	for _, f := range files {
		if !slices.Contains(k.Resources, f) {
			found.add("%s is not in the base's resources", f)
		}
	}
	for _, r := range k.Resources {
		if !slices.Contains(files, r) {
			found.add("the base lists %s, which is not a manifest in %s", r, tr.dir)
		}
	}
	if len(tr.namespaces) != 1 || tr.namespaces[0].Name != k.Namespace {
		found.add("the base should create its namespace %s", k.Namespace)
	}
	return found
}

func TestBaseKustomization(t *testing.T) {
	expectClean(t, "k8s/base", checkBaseKustomization(loadTree(t, "k8s/base", nil)))
}

// jsonPath reports whether an RFC 6901 pointer names a member of v.
func jsonPath(v any, pointer string) bool {
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// overlayEffective applies an overlay's generators to the base's Secrets
// and ConfigMaps (behavior: merge), as kustomize would, reading a
// generator's env file from its committed .example when the file itself is
// absent (it never is committed).
func overlayEffective(t *testing.T, dir string, base *tree, k *kustomization) (*tree, problems) {
	var found problems
	eff := *base
	eff.kustomization = k
	if eff.kustomization.Namespace == "" {
		eff.kustomization = &kustomization{Namespace: base.kustomization.Namespace}
	}
	eff.secrets, eff.configMaps = map[string]*corev1.Secret{}, map[string]*corev1.ConfigMap{}
	for n, s := range base.secrets {
		eff.secrets[n] = s.DeepCopy()
	}
	for n, c := range base.configMaps {
		eff.configMaps[n] = c.DeepCopy()
	}
	merge := func(kind string, g kustomizeGen, known map[string]string, set func(k, v string)) {
		if g.Behavior != "merge" {
			found.add("%s generator %s: behavior %q, want merge into the base's", kind, g.Name, g.Behavior)
		}
		pairs := map[string]string{}
		for _, l := range g.Literals {
			key, v, ok := strings.Cut(l, "=")
			if !ok {
				found.add("%s generator %s: literal %q is not key=value", kind, g.Name, l)
			}
			pairs[key] = v
		}
		for _, e := range g.Envs {
			text, err := os.ReadFile(filepath.Join(dir, e))
			if errors.Is(err, os.ErrNotExist) {
				text, err = os.ReadFile(filepath.Join(dir, e+".example"))
			}
			if err != nil {
				found.add("%s generator %s: %s: no file and no .example", kind, g.Name, e)
				continue
			}
			values, _, err := parseDotenv(string(text))
			if err != nil {
				found.add("%s generator %s: %s: %v", kind, g.Name, e, err)
			}
			maps.Copy(pairs, values)
		}
		for _, f := range g.Files {
			key, _, _ := strings.Cut(f, "=")
			pairs[key] = "a file the operator supplies"
		}
		for key, v := range pairs {
			if _, ok := known[key]; !ok {
				found.add("%s generator %s sets %s, which the base's %s does not have", kind, g.Name, key, g.Name)
			}
			set(key, v)
		}
	}
	for _, g := range k.SecretGenerator {
		s, ok := eff.secrets[g.Name]
		if !ok {
			found.add("secretGenerator %s: the base has no such Secret", g.Name)
			continue
		}
		if g.Options == nil || !g.Options.DisableNameSuffixHash {
			found.add("secretGenerator %s: a hashed name would not be the one the Deployments refer to", g.Name)
		}
		// kustomize merges the generated data into the Secret's data and
		// drops its stringData: a template key the overlay does not supply
		// is gone, and a Deployment referring to it would not start.
		template := secretKeys(s)
		s.StringData = map[string]string{}
		merge("Secret", g, template, func(k, v string) { s.StringData[k] = v })
		for key := range template {
			if _, ok := s.StringData[key]; !ok {
				found.add("secretGenerator %s does not supply %s: kustomize drops the template's stringData when it merges", g.Name, key)
			}
		}
	}
	for _, g := range k.ConfigMapGenerator {
		cm, ok := eff.configMaps[g.Name]
		if !ok {
			found.add("configMapGenerator %s: the base has no such ConfigMap", g.Name)
			continue
		}
		merge("ConfigMap", g, cm.Data, func(k, v string) { cm.Data[k] = v })
	}
	return &eff, found
}

// checkOverlay holds an overlay to building on the base, naming only what
// the base has, and leaving every service with an environment microshop
// accepts; replicas must lie within [minReplicas, maxReplicas].
func checkOverlay(t *testing.T, dir string, texts map[string]string, minReplicas, maxReplicas int) problems {
	var found problems
	base := loadTree(t, "k8s/base", nil)
	ov := loadTree(t, dir, texts)
	k := ov.kustomization
	if !slices.Contains(k.Resources, "../../base") {
		found.add("%s does not build on ../../base", dir)
	}
	if k.Namespace != base.kustomization.Namespace {
		found.add("%s puts what it adds in namespace %q, not the base's %s", dir, k.Namespace, base.kustomization.Namespace)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			found.add("%s lists %s, which does not exist", dir, r)
		}
	}
	counts := map[string]int{}
	for _, r := range k.Replicas {
		if _, ok := base.deployments[r.Name]; !ok {
			found.add("%s sets replicas of %s, which the base does not deploy", dir, r.Name)
		}
		counts[r.Name] = r.Count
	}
	for _, s := range services {
		if c, ok := counts[s]; !ok || c < minReplicas || c > maxReplicas {
			found.add("%s runs %d replicas of %s, want %d to %d", dir, c, s, minReplicas, maxReplicas)
		}
	}
	baseImages := map[string]bool{}
	for _, d := range base.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			name, _, _ := strings.Cut(c.Image, ":")
			baseImages[name] = true
		}
	}
	for _, im := range k.Images {
		if !baseImages[im.Name] {
			found.add("%s retags image %s, which no base container uses", dir, im.Name)
		}
		if im.NewTag == "latest" || (im.NewTag == "" && im.Digest == "") {
			found.add("%s: image %s is not pinned", dir, im.Name)
		}
	}
	for i, p := range k.Patches {
		if p.Target == nil || p.Patch == "" {
			found.add("%s patch %d: want an inline JSON patch with a target", dir, i+1)
			continue
		}
		var ops []jsonPatchOp
		if err := yaml.UnmarshalStrict([]byte(p.Patch), &ops); err != nil {
			found.add("%s patch %d: %v", dir, i+1, err)
			continue
		}
		var targets []any
		switch p.Target.Kind {
		case "HorizontalPodAutoscaler":
			for _, h := range base.hpas {
				targets = append(targets, h)
			}
		case "Deployment":
			for _, d := range base.deployments {
				targets = append(targets, d)
			}
		default:
			found.add("%s patch %d targets kind %s, which the test does not know", dir, i+1, p.Target.Kind)
		}
		for _, obj := range targets {
			b, _ := json.Marshal(obj)
			var doc any
			_ = json.Unmarshal(b, &doc)
			for _, op := range ops {
				if op.Op != "replace" && op.Op != "add" {
					found.add("%s patch %d: op %s", dir, i+1, op.Op)
				}
				if op.Op == "replace" && !jsonPath(doc, op.Path) {
					found.add("%s patch %d replaces %s, which the base's %s does not have", dir, i+1, op.Path, p.Target.Kind)
				}
			}
		}
	}
	eff, genProblems := overlayEffective(t, dir, base, k)
	found = append(found, genProblems...)
	for _, s := range services {
		for _, p := range checkServiceDeployment(t, eff, s) {
			found.add("%s: %s", dir, p)
		}
	}
	for name, d := range ov.deployments {
		pod := d.Spec.Template.Spec
		for _, c := range pod.Containers {
			found = append(found, checkContainerBasics(dir+" Deployment "+name+" container "+c.Name, pod, c)...)
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				found.add("%s Deployment %s: want liveness and readiness probes", dir, name)
			}
		}
	}
	return found
}

func TestOverlays(t *testing.T) {
	expectClean(t, "dev", checkOverlay(t, "k8s/overlays/dev", nil, 1, 1))
	expectClean(t, "prod", checkOverlay(t, "k8s/overlays/prod", nil, 2, 100))

	// The dev overlay's broker is the one the base's policies let the
	// services reach (TestNetworkPolicies evaluates them with its labels),
	// and the URL the services get names its Service.
	dev := loadTree(t, "k8s/overlays/dev", nil)
	if _, ok := dev.services["nats"]; !ok {
		t.Error("the dev overlay has no nats Service")
	}
	eff, _ := overlayEffective(t, "k8s/overlays/dev", loadTree(t, "k8s/base", nil), dev.kustomization)
	if got := secretKeys(eff.secrets["microshop-secrets"])["broker-url"]; got != "nats://nats:4222" {
		t.Errorf("dev broker-url = %q, want the overlay's NATS, nats://nats:4222", got)
	}
	prod, _ := overlayEffective(t, "k8s/overlays/prod", loadTree(t, "k8s/base", nil), loadTree(t, "k8s/overlays/prod", nil).kustomization)
	prodSecrets := secretKeys(prod.secrets["microshop-secrets"])
	for _, want := range []struct{ key, scheme string }{
		{"users-db-url", "postgres"}, {"catalog-db-url", "mongodb"}, {"orders-db-url", "mysql"}, {"broker-url", "amqp"},
	} {
		if u, err := url.Parse(prodSecrets[want.key]); err != nil || u.Scheme != want.scheme {
			t.Errorf("prod %s = %q, want a %s:// URL", want.key, prodSecrets[want.key], want.scheme)
		}
	}
	for k, v := range prodSecrets {
		expectClean(t, "prod secrets.env.example", checkSecretURL(k, v))
	}
}

func TestOverlaysNegative(t *testing.T) {
	dev := readFile(t, "k8s/overlays/dev/kustomization.yaml")
	for _, tc := range []struct{ name, old, new, want string }{
		{"no base", "  - ../../base\n", "", "does not build on ../../base"},
		{"two replicas in dev", "  - name: orders\n    count: 1", "  - name: orders\n    count: 2", "runs 2 replicas of orders"},
		{"unknown deployment", "  - name: orders\n    count: 1", "  - name: order\n    count: 1", "replicas of order,"},
		{"unknown secret key", "      - broker-url=nats://nats:4222", "      - broker_url=nats://nats:4222", "sets broker_url"},
		{"invalid broker URL", "      - broker-url=nats://nats:4222", "      - broker-url=nats:4222", "refuses its environment"},
		{"patch of nothing", "        path: /spec/minReplicas", "        path: /spec/minReplica", "replaces /spec/minReplica"},
		{"latest", "    newTag: dev", "    newTag: latest", "not pinned"},
		{"missing resource", "  - nats.yaml", "  - nats.yaml\n  - redis.yaml", "lists redis.yaml"},
		{"no namespace", "namespace: microshop\n", "", "not the base's microshop"},
		{"secret key left out", "      - admin-password=\n", "", "does not supply admin-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			texts := map[string]string{"kustomization.yaml": mutate(t, dev, tc.old, tc.new)}
			expectReported(t, checkOverlay(t, "k8s/overlays/dev", texts, 1, 1), tc.want)
		})
	}
	t.Run("file left out of the base", func(t *testing.T) {
		tr := loadTree(t, "k8s/base", map[string]string{"kustomization.yaml": mutate(t, readFile(t, "k8s/base/kustomization.yaml"), "  - shipping.yaml\n", "")})
		expectReported(t, checkBaseKustomization(tr), "shipping.yaml is not in the base's resources")
	})
}

// --- compose ---

// composeFile is the part of the Compose specification compose.yaml uses;
// decoded strictly, anything else fails like a typo would.
type composeFile struct {
	Name             string                       `json:"name"`
	XMicroshop       map[string]any               `json:"x-microshop"`
	XMicroshopEnv    map[string]string            `json:"x-microshop-env"`
	XMicroshopBroker map[string]string            `json:"x-microshop-broker"`
	Services         map[string]composeService    `json:"services"`
	Configs          map[string]composeConfig     `json:"configs"`
	Secrets          map[string]composeSecret     `json:"secrets"`
	Volumes          map[string]struct{}          `json:"volumes"`
	Networks         map[string]composeNetworkDef `json:"networks"`
}

type composeService struct {
	Image       string                       `json:"image"`
	Build       *composeBuild                `json:"build,omitempty"`
	Command     []string                     `json:"command,omitempty"`
	Hostname    string                       `json:"hostname,omitempty"`
	Restart     string                       `json:"restart,omitempty"`
	ReadOnly    bool                         `json:"read_only,omitempty"`
	Tmpfs       []string                     `json:"tmpfs,omitempty"`
	CapDrop     []string                     `json:"cap_drop,omitempty"`
	SecurityOpt []string                     `json:"security_opt,omitempty"`
	Environment map[string]string            `json:"environment,omitempty"`
	Secrets     []string                     `json:"secrets,omitempty"`
	Configs     []composeConfigRef           `json:"configs,omitempty"`
	Volumes     []string                     `json:"volumes,omitempty"`
	Ports       []string                     `json:"ports,omitempty"`
	Healthcheck *composeHealthcheck          `json:"healthcheck,omitempty"`
	DependsOn   map[string]composeDependency `json:"depends_on,omitempty"`
	Networks    []string                     `json:"networks,omitempty"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

type composeConfig struct {
	Content string `json:"content,omitempty"`
	File    string `json:"file,omitempty"`
}

type composeSecret struct {
	File string `json:"file"`
}

type composeNetworkDef struct {
	Internal bool `json:"internal,omitempty"`
}

type composeConfigRef struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

type composeHealthcheck struct {
	Test        []string `json:"test"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod string   `json:"start_period,omitempty"`
}

type composeDependency struct {
	Condition string `json:"condition"`
}

var interpolation = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate resolves ${VAR:-default} as compose does with VAR unset.
func interpolate(s string) string {
	return interpolation.ReplaceAllString(strings.ReplaceAll(s, "$$", "$"), "$2")
}

// composeDatabases is DESIGN.md's seed: the store each of these services
// runs on in the polyglot stack.
var composeDatabases = map[string]struct{ scheme, host string }{
	"users":   {"postgres", "postgres"},
	"catalog": {"mongodb", "mongo"},
	"orders":  {"mysql", "mysql"},
}

func checkCompose(t *testing.T, text string) problems {
	var found problems
	var c composeFile
	if err := yaml.UnmarshalStrict([]byte(text), &c); err != nil {
		found.add("decoding: %v", err)
		return found
	}
	known := configNames(t)
	for _, want := range []string{"postgres", "mongo", "mysql", "rabbitmq", "prometheus", "grafana", "jaeger", "etcd"} {
		if _, ok := c.Services[want]; !ok {
			found.add("no %s service", want)
		}
	}
	found = append(found, checkComposeScrapes(c.Configs["prometheus"].Content)...)
	for name, s := range c.Services {
		where := "service " + name
		found = append(found, checkImage(where, s.Image)...)
		if len(s.Ports) > 0 && name != "gateway" {
			found.add("%s publishes %q: only the gateway is published", where, s.Ports)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				found.add("%s publishes %q beyond the host's loopback", where, p)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				found.add("%s depends on %s, which does not exist", where, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				found.add("%s waits for %s to be healthy, which has no healthcheck", where, dep)
			case d.Condition != "service_healthy" && d.Condition != "service_started" && d.Condition != "service_completed_successfully":
				found.add("%s depends on %s with condition %q", where, dep, d.Condition)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				found.add("%s uses secret %s, which is not declared", where, sec)
			}
		}
		for _, cf := range s.Configs {
			if _, ok := c.Configs[cf.Source]; !ok {
				found.add("%s uses config %s, which is not declared", where, cf.Source)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					found.add("%s mounts %s, which does not exist in deploy/", where, src)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				found.add("%s mounts volume %s, which is not declared", where, src)
			}
		}
		for _, n := range s.Networks {
			if _, ok := c.Networks[n]; !ok {
				found.add("%s joins network %s, which is not declared", where, n)
			}
		}
	}
	for _, name := range services {
		s, ok := c.Services[name]
		where := "service " + name
		if !ok {
			found.add("no %s service", name)
			continue
		}
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Context != ".." {
			found.add("%s is not built from deploy/Dockerfile with the repository as context", where)
		}
		if !slices.Equal(s.Command, []string{"serve", "--services=" + name}) {
			found.add("%s runs %q, want serve --services=%s", where, s.Command, name)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			found.add("%s: want read_only and cap_drop ALL", where)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = interpolate(v)
		}
		found = append(found, unknownNames(slices.Collect(maps.Keys(env)), known, where)...)
		addrVar := "MICROSHOP_" + strings.ToUpper(name) + "_ADDR"
		if name == "gateway" {
			addrVar = "MICROSHOP_ADDR"
		}
		if env[addrVar] != "0.0.0.0:8080" {
			found.add("%s: %s is %q, want 0.0.0.0:8080 (it announces its container's address)", where, addrVar, env[addrVar])
		}
		for n, v := range env {
			if strings.HasSuffix(n, "_FILE") && !slices.ContainsFunc(s.Secrets, func(sec string) bool { return v == "/run/secrets/"+sec }) {
				found.add("%s: %s=%s is not one of its secrets", where, n, v)
			}
			if strings.HasSuffix(n, "_DB_URL") && n != "MICROSHOP_"+strings.ToUpper(name)+"_DB_URL" {
				found.add("%s is given %s: a service reads only its own database", where, n)
			}
		}
		if env["MICROSHOP_ADMIN_PASSWORD"] != "" {
			found.add("%s sets MICROSHOP_ADMIN_PASSWORD in plain text: use MICROSHOP_ADMIN_PASSWORD_FILE and a secret", where)
		}
		if u, err := url.Parse(env["MICROSHOP_REGISTRY_URL"]); err != nil || u.Scheme != "etcd" || c.Services[u.Hostname()].Image == "" {
			found.add("%s: MICROSHOP_REGISTRY_URL %q is not the etcd service", where, env["MICROSHOP_REGISTRY_URL"])
		}
		found = append(found, checkBrokerEnv(where, name, env)...)
		if u, err := url.Parse(env["MICROSHOP_BROKER_URL"]); !noBroker[name] && (err != nil || u.Scheme != "amqp" || u.Hostname() != "rabbitmq") {
			found.add("%s: MICROSHOP_BROKER_URL %q is not the rabbitmq service", where, env["MICROSHOP_BROKER_URL"])
		}
		if _, waits := s.DependsOn["rabbitmq"]; noBroker[name] && waits {
			found.add("%s waits for rabbitmq, but it has no broker connection", where)
		}
		if u, err := url.Parse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]); err != nil || u.Hostname() != "jaeger" || u.Port() != "4318" {
			found.add("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q is not jaeger's OTLP/HTTP port", where, env["OTEL_EXPORTER_OTLP_ENDPOINT"])
		}
		if dbURL, ok := env["MICROSHOP_"+strings.ToUpper(name)+"_DB_URL"]; ok {
			u, err := url.Parse(dbURL)
			db := c.Services[u.Hostname()]
			switch want, seeded := composeDatabases[name]; {
			case err != nil:
				found.add("%s: its database URL does not parse", where)
			case seeded && (u.Scheme != want.scheme || u.Hostname() != want.host):
				found.add("%s runs on %s://%s, want %s://%s as DESIGN.md seeds it", where, u.Scheme, u.Hostname(), want.scheme, want.host)
			case db.Image == "":
				found.add("%s: its database host %s is not a service", where, u.Hostname())
			case s.DependsOn[u.Hostname()].Condition != "service_healthy":
				found.add("%s does not wait for its database %s to be healthy", where, u.Hostname())
			}
		} else if name != "gateway" {
			found.add("%s has no database URL: the stack runs no embedded database", where)
		}
		if err := loadEnv(t, env); err != nil {
			found.add("%s: microshop refuses its environment: %v", where, err)
		}
	}
	return found
}

// composeScrape is the part of the compose stack's Prometheus configuration
// that names what it scrapes.
type composeScrape struct {
	ScrapeConfigs []struct {
		StaticConfigs []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// checkComposeScrapes reports a service the compose stack's Prometheus does
// not scrape: there etcd is the registry, so its targets are listed by
// container name, each labelled with its service as the alerts and the
// dashboards select it.
func checkComposeScrapes(content string) problems {
	var found problems
	var cfg composeScrape
	if err := yaml.Unmarshal([]byte(content), &cfg); err != nil {
		found.add("the prometheus config: %v", err)
		return found
	}
	scraped := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = st.Labels["service"]
			}
		}
	}
	for _, name := range services {
		switch label, ok := scraped[name+":8080"]; {
		case !ok:
			found.add("Prometheus does not scrape %s:8080", name)
		case label != name:
			found.add("Prometheus labels %s:8080 service=%q, want %s", name, label, name)
		}
	}
	return found
}

func TestCompose(t *testing.T) {
	expectClean(t, "deploy/compose.yaml", checkCompose(t, readFile(t, "compose.yaml")))
}

func TestComposeNegative(t *testing.T) {
	text := readFile(t, "compose.yaml")
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", "    command: [\"serve\", \"--services=users\"]\n", "    command: [\"serve\", \"--services=users\"]\n    enviroment: {}\n", "unknown field"},
		{"another service published", "    command: [\"serve\", \"--services=orders\"]\n", "    command: [\"serve\", \"--services=orders\"]\n    ports:\n      - \"127.0.0.1:9000:8080\"\n", "only the gateway is published"},
		{"gateway on every interface", `      - "127.0.0.1:8080:8080"`, `      - "8080:8080"`, "beyond the host's loopback"},
		{"users on mysql", "MICROSHOP_USERS_DB_URL: \"postgres://microshop:${POSTGRES_PASSWORD:-microshop}@postgres:5432/users?sslmode=disable\"", "MICROSHOP_USERS_DB_URL: \"mysql://microshop:x@mysql:3306/users\"", "want postgres://postgres"},
		{"latest image", "image: mongo:8.0.13", "image: mongo:latest", ":latest"},
		{"unknown variable", `MICROSHOP_CATALOG_ADDR: "0.0.0.0:8080"`, `MICROSHOP_CATALOG_ADR: "0.0.0.0:8080"`, "MICROSHOP_CATALOG_ADR, which microshop does not read"},
		{"healthy without healthcheck", "      jaeger:\n        condition: service_started\n      users:", "      jaeger:\n        condition: service_healthy\n      users:", "which has no healthcheck"},
		{"undeclared secret", "      - jwt_key_ring\n    depends_on:", "      - jwt_key\n    depends_on:", "secret jwt_key"},
		{"missing bind mount", "./prometheus:/etc/prometheus/microshop:ro", "./prometheus-rules:/etc/prometheus/microshop:ro", "does not exist"},
		{"invalid value", `  LOG_FORMAT: "json"`, `  LOG_FORMAT: "xml"`, "refuses its environment"},
		{"broker for the monolith", "      <<: *microshop-env\n      MICROSHOP_LEGACY_ADDR", "      <<: [*microshop-env, *microshop-broker]\n      MICROSHOP_LEGACY_ADDR", "legacy is given MICROSHOP_BROKER_URL, but it has no broker connection"},
		{"monolith waits for the broker", "    depends_on:\n      postgres:\n        condition: service_healthy\n      etcd:", "    depends_on:\n      postgres:\n        condition: service_healthy\n      rabbitmq:\n        condition: service_healthy\n      etcd:", "legacy waits for rabbitmq"},
		{"no broker for orders", "      <<: [*microshop-env, *microshop-broker]\n      MICROSHOP_ORDERS_ADDR", "      <<: *microshop-env\n      MICROSHOP_ORDERS_ADDR", "orders is not given MICROSHOP_BROKER_URL"},
		{"monolith not scraped", "            - targets: [\"legacy:8080\"]\n              labels: {service: legacy}\n", "", "does not scrape legacy:8080"},
		{"scrape mislabelled", "labels: {service: legacy}", "labels: {service: monolith}", `service="monolith", want legacy`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectReported(t, checkCompose(t, mutate(t, text, tc.old, tc.new)), tc.want)
		})
	}
}

// --- Prometheus alerts ---

// checkServiceMissing reports a service of config.Services the ServiceMissing
// alert does not watch: an instance that dies leaves the registry, and with
// it its up series, so only this alert notices a service gone altogether.
func checkServiceMissing(text string) problems {
	var found problems
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal([]byte(text), &rules); err != nil {
		found.add("decoding: %v", err)
		return found
	}
	expr := ""
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "ServiceMissing" {
				expr = r.Expr
			}
		}
	}
	if expr == "" {
		found.add("no ServiceMissing alert")
		return found
	}
	for _, name := range config.Services {
		if !strings.Contains(expr, fmt.Sprintf(`absent(up{job="microshop",service=%q})`, name)) {
			found.add("ServiceMissing does not watch %s", name)
		}
	}
	return found
}

func TestAlertsWatchEveryService(t *testing.T) {
	expectClean(t, "prometheus/alerts.yml", checkServiceMissing(readFile(t, "prometheus/alerts.yml")))
}

func TestAlertsWatchEveryServiceNegative(t *testing.T) {
	text := mutate(t, readFile(t, "prometheus/alerts.yml"), "          or absent(up{job=\"microshop\",service=\"legacy\"})\n", "")
	expectReported(t, checkServiceMissing(text), "does not watch legacy")
}

// TestExamplesCarryNoSecrets guards the committed files against a real
// secret pasted in by mistake: a private key, or a password that is not the
// placeholder in any URL.
func TestExamplesCarryNoSecrets(t *testing.T) {
	files := append(manifestFiles(t, "k8s"), "compose.yaml", "k8s/overlays/prod/secrets.env.example", "../.env.development", "../.env.production")
	urlPattern := regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^\s"']+`)
	for _, f := range files {
		text := readFile(t, f)
		if strings.Contains(text, "PRIVATE KEY-----") {
			t.Errorf("%s holds a private key", f)
		}
		for _, raw := range urlPattern.FindAllString(text, -1) {
			u, err := url.Parse(interpolate(raw))
			if err != nil || u.User == nil {
				continue
			}
			if pw, ok := u.User.Password(); ok && pw != placeholder && !strings.Contains(raw, "${") {
				t.Errorf("%s: %s carries a password that is not %s", f, u.Redacted(), placeholder)
			}
		}
	}
}

// kustomizeBuild builds an overlay with kustomize as kubectl embeds it, from
// a copy of deploy/k8s given stand-ins for the files never committed (the
// keys, and secrets.env from its example), and decodes the result strictly.
// It checks what a cluster would really receive: the checks above read the
// overlays' intent, this their outcome.
func kustomizeBuild(t *testing.T, overlay string) *tree {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not installed (Debian package kubectl); CI must have it")
		}
		t.Skip("kubectl is not installed (Debian package kubectl)")
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("k8s")); err != nil {
		t.Fatal(err)
	}
	od := filepath.Join(dir, "overlays", overlay)
	if err := os.MkdirAll(filepath.Join(od, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"service-ed25519.pem", "jwt-ed25519.pem"} {
		if err := os.WriteFile(filepath.Join(od, "keys", key), []byte("stand-in for "+key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if example, err := os.ReadFile(filepath.Join(od, "secrets.env.example")); err == nil {
		if err := os.WriteFile(filepath.Join(od, "secrets.env"), example, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", od)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", overlay, err, stderr.String())
	}
	objs, err := decodeDocuments(string(out))
	if err != nil {
		t.Fatalf("the built %s overlay: %v", overlay, err)
	}
	tr := newTree("built " + overlay)
	tr.kustomization = &kustomization{Namespace: namespace}
	tr.add(objs)
	return tr
}

// checkBuilt holds a built overlay to the rules the base's sources are held
// to, in one namespace, with replicas and autoscaler bounds within
// [minReplicas, maxReplicas].
func checkBuilt(t *testing.T, tr *tree, minReplicas, maxReplicas int32) problems {
	var found problems
	for _, name := range services {
		found = append(found, checkServiceDeployment(t, tr, name)...)
		found = append(found, checkServiceObjects(tr, name)...)
		d, h := tr.deployments[name], tr.hpas[name]
		if d == nil || h == nil {
			continue
		}
		if r := d.Spec.Replicas; r == nil || *r < minReplicas || *r > maxReplicas {
			found.add("Deployment %s: replicas %v, want %d to %d", name, d.Spec.Replicas, minReplicas, maxReplicas)
		}
		if *h.Spec.MinReplicas < minReplicas || *h.Spec.MinReplicas > maxReplicas {
			found.add("HorizontalPodAutoscaler %s: minReplicas %d, want %d to %d", name, *h.Spec.MinReplicas, minReplicas, maxReplicas)
		}
	}
	objects := []metav1.Object{}
	for _, d := range tr.deployments {
		objects = append(objects, d)
	}
	for _, s := range tr.secrets {
		objects = append(objects, s)
	}
	for _, p := range tr.policies {
		objects = append(objects, p)
	}
	for _, o := range objects {
		if o.GetNamespace() != namespace {
			found.add("%s is in namespace %q, want %s", o.GetName(), o.GetNamespace(), namespace)
		}
	}
	for _, s := range tr.secrets {
		for k, v := range secretKeys(s) {
			if strings.HasPrefix(v, placeholder+":") {
				found.add("Secret %s: %s is still the template's placeholder", s.Name, k)
			}
		}
	}
	return found
}

func TestOverlaysBuilt(t *testing.T) {
	for _, tc := range []struct {
		overlay  string
		min, max int32
	}{{"dev", 1, 1}, {"prod", 2, 100}} {
		t.Run(tc.overlay, func(t *testing.T) {
			tr := kustomizeBuild(t, tc.overlay)
			expectClean(t, "built "+tc.overlay, checkBuilt(t, tr, tc.min, tc.max))
			expectClean(t, "built "+tc.overlay, checkEdges(t, tr))
		})
	}
}

// TestOverlaysBuiltNegative builds the base alone, which no cluster should
// receive: its Secret is all placeholders and it runs two replicas.
func TestOverlaysBuiltNegative(t *testing.T) {
	tr := kustomizeBuild(t, "../base")
	found := checkBuilt(t, tr, 1, 1)
	expectReported(t, found, "still the template's placeholder")
	expectReported(t, found, "replicas")
}
