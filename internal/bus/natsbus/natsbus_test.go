package natsbus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/bustest"
	"github.com/microshop/microshop/internal/bus/internal/dispatch"
	"github.com/microshop/microshop/internal/event"
)

// machineNATS is the NATS server every development and CI machine runs.
const machineNATS = "nats://127.0.0.1:4222"

// testBroker is a Bus that can also publish raw bytes, for the suite, and
// notes the streams it touches, so that a test on a shared server can
// delete them afterwards.
type testBroker struct {
	*Bus
	touched *streams
}

// streams is the set of streams a test's brokers touched.
type streams struct {
	mu  sync.Mutex
	set map[string]bool
}

// add notes the streams of topics, as b names them.
func (s *streams) add(b *Bus, topics ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range topics {
		d, _, _ := strings.Cut(t, ".")
		s.set[b.streamName(d)] = true
	}
}

func (b testBroker) PublishRaw(ctx context.Context, topic string, body []byte) error {
	b.touched.add(b.Bus, topic)
	d, _, _ := strings.Cut(topic, ".")
	if _, err := b.ensureStream(ctx, d); err != nil {
		return err
	}
	_, err := b.js.Publish(ctx, b.subject(topic), body)
	return err
}

func (b testBroker) Publish(ctx context.Context, e event.Event) error {
	b.touched.add(b.Bus, e.Topic)
	return b.Bus.Publish(ctx, e)
}

func (b testBroker) Subscribe(ctx context.Context, s bus.Subscription, h bus.Handler) error {
	b.touched.add(b.Bus, s.Topics...)
	return b.Bus.Subscribe(ctx, s, h)
}

var _ bustest.RawPublisher = testBroker{}

// connect connects to url, closing the connection when the test ends.
func connect(t *testing.T, url string) *Bus { return connectNS(t, url, "") }

// connectNS connects to url in namespace ns, closing the connection when
// the test ends.
func connectNS(t *testing.T, url, ns string) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := Connect(ctx, url, Options{Name: "natsbus-test", Log: testLog(t), Namespace: ns})
	if err != nil {
		t.Fatalf("Connect(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// embedded starts a server in dir, stopping it when the test ends.
func embedded(t *testing.T, dir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Embedded(ctx, dir, "127.0.0.1:0", testLog(t))
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func TestSuiteEmbedded(t *testing.T) {
	srv := embedded(t, t.TempDir())
	bustest.Run(t, func(t *testing.T) bus.Broker {
		return testBroker{Bus: connect(t, srv.ClientURL())}
	})
}

func TestSuiteEmbeddedNamespaced(t *testing.T) {
	srv := embedded(t, t.TempDir())
	ns := bustest.NewNamespace()
	bustest.Run(t, func(t *testing.T) bus.Broker {
		return testBroker{Bus: connectNS(t, srv.ClientURL(), ns)}
	})
}

func TestNamespacesEmbedded(t *testing.T) {
	srv := embedded(t, t.TempDir())
	bustest.RunNamespaces(t, func(t *testing.T, ns string) bus.Broker {
		return testBroker{Bus: connectNS(t, srv.ClientURL(), ns)}
	})
}

// machineBroker skips the test when the machine's NATS is not reachable,
// unless CI=true, and returns a function that connects to it in a
// namespace; the streams the connections touched are deleted when the test
// ends, after its subtests.
func machineBroker(t *testing.T) func(t *testing.T, ns string) bus.Broker {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	b, err := Connect(ctx, machineNATS, Options{Name: "natsbus-test"})
	cancel()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NATS with JetStream at %s is required in CI: %v", machineNATS, err)
		}
		t.Skipf("no NATS with JetStream at %s: %v", machineNATS, err)
	}
	touched := &streams{set: map[string]bool{}}
	t.Cleanup(func() {
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for name := range touched.set {
			if err := b.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("deleting stream %s: %v", name, err)
			}
		}
	})
	return func(t *testing.T, ns string) bus.Broker {
		return testBroker{Bus: connectNS(t, machineNATS, ns), touched: touched}
	}
}

// TestSuiteMachineNATS runs the suite on the machine's own NATS server. It is
// skipped when that server is not reachable, unless CI=true.
func TestSuiteMachineNATS(t *testing.T) {
	connect := machineBroker(t)
	bustest.Run(t, func(t *testing.T) bus.Broker { return connect(t, "") })
}

// TestSuiteMachineNATSNamespaced runs the suite on the machine's own NATS
// server in a namespace of its own.
func TestSuiteMachineNATSNamespaced(t *testing.T) {
	connect := machineBroker(t)
	ns := bustest.NewNamespace()
	bustest.Run(t, func(t *testing.T) bus.Broker { return connect(t, ns) })
}

func TestNamespacesMachineNATS(t *testing.T) {
	bustest.RunNamespaces(t, machineBroker(t))
}

// TestEmbeddedSettings checks the settings the README promises: loopback,
// not port 4222, every write synced before the ack, streams on file with
// duplicate detection, consumers with bounded, explicit acknowledgement.
func TestEmbeddedSettings(t *testing.T) {
	srv := embedded(t, t.TempDir())
	if url := srv.ClientURL(); !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":4222") {
		t.Errorf("ClientURL = %s, want loopback on a port other than 4222", url)
	}
	if cfg := srv.ns.JetStreamConfig(); cfg == nil || !cfg.SyncAlways || cfg.SyncInterval != SyncInterval {
		t.Errorf("JetStream config = %+v, want SyncAlways and SyncInterval %v", cfg, SyncInterval)
	}

	b := connect(t, srv.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	s := bus.Subscription{
		Group: "settings", Topics: []string{"orders.order.created", "orders.order.paid"}, MaxDeliver: 7, AckWait: 3 * time.Second,
		DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
		Ready:      func() { close(ready) },
	}
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, s, func(context.Context, bus.Delivery) error { return nil }) }()
	<-ready

	st, err := b.js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatalf("stream ORDERS: %v", err)
	}
	sc := st.CachedInfo().Config
	if sc.Storage != jetstream.FileStorage || sc.Replicas != 1 || sc.Duplicates != DuplicateWindow ||
		sc.MaxAge != DefaultMaxAge || len(sc.Subjects) != 1 || sc.Subjects[0] != "orders.>" {
		t.Errorf("stream config = %+v", sc)
	}
	c, err := st.Consumer(ctx, "settings")
	if err != nil {
		t.Fatalf("consumer settings: %v", err)
	}
	cc := c.CachedInfo().Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != s.AckWait || cc.MaxDeliver != 7+dispatch.DeadLetterRetries ||
		cc.DeliverPolicy != jetstream.DeliverAllPolicy || len(cc.FilterSubjects) != 2 {
		t.Errorf("consumer config = %+v", cc)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Subscribe: %v", err)
	}
}

// TestDuplicatePublishStoredOnce: JetStream's duplicate window stores an
// event published twice only once.
func TestDuplicatePublishStoredOnce(t *testing.T) {
	srv := embedded(t, t.TempDir())
	b := connect(t, srv.ClientURL())
	ctx := context.Background()
	e, err := event.New("test", "orders.order.created", "OrderCreated", 1, "o-1", map[string]int{"total_cents": 100})
	if err != nil {
		t.Fatal(err)
	}
	e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for range 3 {
		if err := b.Publish(ctx, e); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	st, err := b.js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after publishing one event three times, want 1", info.State.Msgs)
	}
	msg, err := st.GetLastMsgForSubject(ctx, e.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != e.ID {
		t.Errorf("Nats-Msg-Id = %q, want the event id %q", got, e.ID)
	}
	if got := msg.Header.Get("traceparent"); got != e.TraceParent {
		t.Errorf("traceparent header = %q, want %q", got, e.TraceParent)
	}
}

// helperEnv makes the test binary run an embedded server in the directory it
// names, print its URL and wait to be killed (see TestBrokerCrash).
const helperEnv = "NATSBUS_TEST_SERVER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		srv, err := Embedded(context.Background(), dir, "127.0.0.1:0", nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(srv.ClientURL())
		select {} // until killed
	}
	os.Exit(m.Run())
}

// startServerProcess runs an embedded server in its own process, so that the
// test can kill it without a chance to flush or close anything.
func startServerProcess(t *testing.T, dir string) (url string, kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() {
		_ = cmd.Process.Kill() // SIGKILL: no shutdown, no flush
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		kill()
		t.Fatalf("reading the server's URL: %v", err)
	}
	t.Cleanup(kill)
	return strings.TrimSpace(line), kill
}

// TestBrokerCrash: the embedded broker's process is killed (SIGKILL) after
// publishes were acknowledged, and started again on the same directory.
// Every acknowledged event is still delivered, to a group that existed before
// the crash and to one created after it: acknowledged publishes lost = 0.
func TestBrokerCrash(t *testing.T) {
	dir := t.TempDir()
	const topic = "orders.order.created"
	url, kill := startServerProcess(t, dir)
	b := connect(t, url)

	// A group consumes a first batch before the crash; its consumer and
	// acknowledgements are then on the broker too.
	before := &seen{ids: map[string]int{}}
	stop := run(t, b, "early", topic, before)
	first := publishN(t, b, topic, 20)
	before.waitAll(t, first)
	stop()

	acked := publishN(t, b, topic, 200)
	kill()
	_ = b.Close()

	url, _ = startServerProcess(t, dir)
	b = connect(t, url)
	early, late := &seen{ids: map[string]int{}}, &seen{ids: map[string]int{}}
	run(t, b, "early", topic, early)
	run(t, b, "late", topic, late)
	after := publishN(t, b, topic, 10)

	early.waitAll(t, append(acked, after...))
	late.waitAll(t, append(append(first, acked...), after...))
	t.Logf("acknowledged publishes lost: 0 of %d; events of the first batch delivered again to the early group: %d of %d",
		len(acked), early.countOf(first), len(first))
}

// seen counts deliveries per event id.
type seen struct {
	mu  sync.Mutex
	ids map[string]int
}

func (s *seen) handle(_ context.Context, d bus.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[d.Event.ID]++
	return nil
}

func (s *seen) countOf(ids []string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if s.ids[id] > 0 {
			n++
		}
	}
	return n
}

func (s *seen) waitAll(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.countOf(ids) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d of %d acknowledged events", s.countOf(ids), len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run subscribes group to topic until the returned stop is called or the
// test ends.
func run(t *testing.T, b *Bus, group, topic string, s *seen) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	sub := bus.Subscription{
		Group: group, Topics: []string{topic}, AckWait: 5 * time.Second,
		DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { return nil },
		Ready:      func() { close(ready) },
	}
	go func() { done <- b.Subscribe(ctx, sub, s.handle) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Subscribe: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Subscribe: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publishN publishes n events and returns their ids; each was acknowledged.
func publishN(t *testing.T, b *Bus, topic string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		e, err := event.New("test", topic, "OrderCreated", 1, fmt.Sprint(i), map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = b.Publish(ctx, e)
		cancel()
		if err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// BenchmarkPublish measures acknowledged publishes to the embedded server,
// each synced to disk before its ack, one at a time and from 8 goroutines per CPU:
//
//	go test -run '^$' -bench Publish ./internal/bus/natsbus/
func BenchmarkPublish(b *testing.B) {
	srv, err := Embedded(context.Background(), b.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	bus, err := Connect(context.Background(), srv.ClientURL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	e, err := event.New("bench", "orders.order.created", "OrderCreated", 1, "o", map[string]int{"total_cents": 1299})
	if err != nil {
		b.Fatal(err)
	}
	publish := func() {
		e := e
		e.ID = fmt.Sprintf("%s-%d", e.ID, time.Now().UnixNano())
		if err := bus.Publish(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Sequential", func(b *testing.B) {
		for b.Loop() {
			publish()
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				publish()
			}
		})
	})
}

// TestConsumerDeletedIsRecreated: a subscription whose consumer is deleted
// under it (by an operator, or a server that lost its state) sets it up
// again and goes on consuming.
func TestConsumerDeletedIsRecreated(t *testing.T) {
	srv := embedded(t, t.TempDir())
	b := connect(t, srv.ClientURL())
	const topic = "orders.order.created"
	got := &seen{ids: map[string]int{}}
	run(t, b, "recreated", topic, got)
	first := publishN(t, b, topic, 5)
	got.waitAll(t, first)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.js.DeleteConsumer(ctx, "ORDERS", "recreated"); err != nil {
		t.Fatalf("deleting the consumer: %v", err)
	}
	later := publishN(t, b, topic, 5)
	got.waitAll(t, later)
}

// freePort is a port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestEmbeddedAddr: the server listens on the address it is given, and
// refuses port 4222, a port already taken and addresses that are not
// host:port, with an error that says why.
func TestEmbeddedAddr(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := Embedded(ctx, t.TempDir(), addr, testLog(t))
	if err != nil {
		t.Fatalf("Embedded(%s): %v", addr, err)
	}
	t.Cleanup(srv.Shutdown)
	if got, want := srv.ClientURL(), "nats://"+addr; got != want {
		t.Errorf("ClientURL = %s, want %s", got, want)
	}
	b := connect(t, srv.ClientURL())
	if err := b.Ping(ctx); err != nil {
		t.Errorf("Ping on %s: %v", addr, err)
	}

	refused := []struct{ addr, want string }{
		{"127.0.0.1:4222", "4222"},
		{"0.0.0.0:4222", "4222"},
		{addr, "in use"}, // the server above has it
		{"127.0.0.1", "missing port"},
		{"127.0.0.1:http", "port must be a number"},
		{"127.0.0.1:65536", "port must be a number"},
		{"127.0.0.1:-1", "port must be a number"},
	}
	for _, tc := range refused {
		srv, err := Embedded(ctx, t.TempDir(), tc.addr, testLog(t))
		if err == nil {
			srv.Shutdown()
			t.Errorf("Embedded(%s): no error", tc.addr)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Embedded(%s) = %v, want an error mentioning %q", tc.addr, err, tc.want)
		}
	}
	if ctx.Err() != nil {
		t.Error("a refused address made Embedded wait for its context")
	}
}

// TestEmbeddedAnyInterface: a server listening on every interface gives a
// loopback address to connect to.
func TestEmbeddedAnyInterface(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Embedded(ctx, t.TempDir(), "0.0.0.0:0", testLog(t))
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	if url := srv.ClientURL(); !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Errorf("ClientURL = %s, want loopback and the port picked", url)
	}
	_ = connect(t, srv.ClientURL())
}

// TestNamespacedNames: a namespace prefixes subjects and streams as the
// package doc says, and leaves consumer names alone.
func TestNamespacedNames(t *testing.T) {
	srv := embedded(t, t.TempDir())
	b := connectNS(t, srv.ClientURL(), "ci-7")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := &seen{ids: map[string]int{}}
	run(t, b, "inventory", "orders.order.created", got)
	ids := publishN(t, b, "orders.order.created", 1)
	got.waitAll(t, ids)

	st, err := b.js.Stream(ctx, "CI_7_ORDERS")
	if err != nil {
		t.Fatalf("stream CI_7_ORDERS: %v", err)
	}
	if sc := st.CachedInfo().Config; !slices.Equal(sc.Subjects, []string{"ci-7.orders.>"}) {
		t.Errorf("stream subjects = %v, want [ci-7.orders.>]", sc.Subjects)
	}
	msg, err := st.GetLastMsgForSubject(ctx, "ci-7.orders.order.created")
	if err != nil {
		t.Fatalf("the event on subject ci-7.orders.order.created: %v", err)
	}
	var e event.Event
	if err := json.Unmarshal(msg.Data, &e); err != nil || e.Topic != "orders.order.created" || e.ID != ids[0] {
		t.Errorf("stored event = %+v (%v), want id %s and the topic without the namespace", e, err, ids[0])
	}
	c, err := st.Consumer(ctx, "inventory")
	if err != nil {
		t.Fatalf("consumer inventory: %v", err)
	}
	if cc := c.CachedInfo().Config; cc.FilterSubject != "ci-7.orders.order.created" {
		t.Errorf("consumer filter = %q, want ci-7.orders.order.created", cc.FilterSubject)
	}
	if _, err := b.js.Stream(ctx, "ORDERS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream ORDERS: %v, want none outside the namespace", err)
	}
}

// TestNamespaceRefused: Connect refuses a namespace that cannot prefix
// subjects, before connecting.
func TestNamespaceRefused(t *testing.T) {
	for _, ns := range []string{"Prod", "a.b", "a_b", "a>", strings.Repeat("x", 33)} {
		b, err := Connect(context.Background(), "nats://127.0.0.1:1", Options{Namespace: ns})
		if err == nil {
			_ = b.Close()
			t.Errorf("Connect with namespace %q: no error", ns)
		} else if !strings.Contains(err.Error(), "namespace") {
			t.Errorf("Connect with namespace %q = %v, want an error about the namespace", ns, err)
		}
	}
}

// TestStreamNameClash: namespace "a-b" with domain "c" and namespace "a"
// with domain "b_c" spell the same stream, A_B_C. The second to come gets a
// clear error instead of publishing into a stream that is not its own.
func TestStreamNameClash(t *testing.T) {
	srv := embedded(t, t.TempDir())
	first := connectNS(t, srv.ClientURL(), "a-b")
	publishN(t, first, "c.thing.happened", 1)
	e, err := event.New("test", "b_c.thing.happened", "ThingHappened", 1, "k", map[string]int{})
	if err != nil {
		t.Fatal(err)
	}
	err = connectNS(t, srv.ClientURL(), "a").Publish(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "A_B_C") {
		t.Errorf("Publish into a clashing stream name = %v, want an error naming A_B_C", err)
	}
}
