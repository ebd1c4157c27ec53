// Package rabbitbustest runs a RabbitMQ node of a test's own, for the tests
// that stop and start their broker. Those must never restart the machine's
// RabbitMQ: go test runs packages side by side, and a restart there breaks
// every other test using it at that moment (quorum queues answer
// INTERNAL_ERROR while their node is stopping or starting).
//
// The node is a real RabbitMQ, from Debian's rabbitmq-server package, run
// under the test's own name, ports, data directory and Erlang cookie. It
// listens on loopback only and shares nothing with the machine's node but
// the Erlang port mapper. It does not import rabbitbus, so that rabbitbus's
// own tests can use it.
package rabbitbustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverBin is where Debian's rabbitmq-server package keeps the programs
// themselves. The wrappers in /usr/sbin switch to the rabbitmq user and
// read /etc/rabbitmq, which would put the node back on the machine's own
// settings.
const serverBin = "/usr/lib/rabbitmq/bin"

// bootTimeout bounds a start: a node boots in about 4 s on a quiet machine.
const bootTimeout = 90 * time.Second

// Node is a RabbitMQ node that belongs to one test.
type Node struct {
	// URL is the AMQP address of the node, with the default guest user
	// (allowed on loopback only).
	URL string

	name string // the Erlang node name, unique to the test
	dir  string // data, logs, cookie and settings
	port int    // AMQP
	dist int    // Erlang distribution, for rabbitmqctl
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start starts a node for t, stopped and removed when the test ends. It
// skips the test when RabbitMQ's server is not installed, and fails it
// instead under CI=true.
func Start(t testing.TB) *Node {
	t.Helper()
	if _, err := os.Stat(filepath.Join(serverBin, "rabbitmq-server")); err != nil {
		const why = "RabbitMQ's server (Debian's rabbitmq-server package) is not installed: the test runs a RabbitMQ node of its own"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	ports := freePorts(t, 2)
	n := &Node{
		name: "microshop-test-" + hex.EncodeToString(suffix) + "@localhost",
		dir:  t.TempDir(),
		port: ports[0],
		dist: ports[1],
	}
	n.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.port)
	// An empty rabbitmq.conf and rabbitmq-env.conf keep the machine's
	// /etc/rabbitmq out; no plugins (the management plugin would want the
	// machine's port 15672).
	for name, content := range map[string]string{
		"rabbitmq.conf":     "",
		"rabbitmq-env.conf": "",
		"enabled_plugins":   "[].\n",
		".erlang.cookie":    strings.ToUpper(hex.EncodeToString(suffix)) + "MICROSHOPTEST",
	} {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(n.dir, ".erlang.cookie"), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.running() {
			if err := n.stop(); err != nil {
				t.Errorf("stopping RabbitMQ node %s: %v", n.name, err)
			}
		}
	})
	if err := n.start(); err != nil {
		t.Fatalf("starting RabbitMQ node %s: %v", n.name, err)
	}
	return n
}

// Restart stops the node the way an operator would (its connections are
// closed with CONNECTION_FORCED, its queues written down) and starts it
// again on the same port and data. It returns how long the node was away.
func (n *Node) Restart(t testing.TB) time.Duration {
	t.Helper()
	began := time.Now()
	if err := n.stop(); err != nil {
		t.Fatalf("stopping RabbitMQ node %s: %v", n.name, err)
	}
	if err := n.start(); err != nil {
		t.Fatalf("starting RabbitMQ node %s again: %v", n.name, err)
	}
	return time.Since(began)
}

// addr is the node's AMQP listener, host:port.
func (n *Node) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

func (n *Node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// env is the node's environment: the process's own without any RabbitMQ or
// Erlang settings it may carry, and the node's.
func (n *Node) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "ERL_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+n.dir, // the Erlang cookie
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.dist),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(n.dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(n.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(n.dir, "plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "data"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "node.pid"),
		// The script then execs the Erlang VM rather than waiting on it
		// in a shell, so that the VM is the process start runs, and dies
		// with the test binary (Pdeathsig). It changes nothing else.
		"RUNNING_UNDER_SYSTEMD=true",
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
}

// start runs the node and waits until it takes AMQP connections.
func (n *Node) start() error {
	out, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	proc := exec.Command(filepath.Join(serverBin, "rabbitmq-server"))
	proc.Dir, proc.Env = n.dir, n.env()
	proc.Stdout, proc.Stderr = out, out
	// A group of its own, so that the VM and its port helpers are killed
	// together if a stop fails; no node outlives the test binary.
	proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := proc.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = proc.Wait(); close(done) }()
	n.proc, n.done = proc, done

	deadline := time.Now().Add(bootTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("the node exited while starting (%v):\n%s", proc.ProcessState, n.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", n.addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			n.kill()
			return fmt.Errorf("no AMQP listener at %s after %v:\n%s", n.addr(), bootTimeout, n.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the node down with rabbitmqctl and waits for its process to
// exit; if that fails, it kills the process group.
func (n *Node) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	ctl := exec.CommandContext(ctx, filepath.Join(serverBin, "rabbitmqctl"), "-n", n.name, "shutdown")
	ctl.Dir, ctl.Env = n.dir, n.env()
	out, err := ctl.CombinedOutput()
	if err == nil {
		select {
		case <-n.done:
			return nil
		case <-ctx.Done():
			err = errors.New("the node's process did not exit")
		}
	}
	n.kill()
	return fmt.Errorf("rabbitmqctl shutdown: %v\n%s", err, out)
}

func (n *Node) kill() {
	_ = syscall.Kill(-n.proc.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// tail is the end of the node's log, for a failure message.
func (n *Node) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log", n.name+".log"))
	if len(b) == 0 {
		b, _ = os.ReadFile(filepath.Join(n.dir, "server.out"))
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-30):], []byte("\n")))
}

// freePorts finds n distinct free loopback ports, holding each until all
// are found.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
