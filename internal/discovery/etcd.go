package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/microshop/microshop/internal/fail"
)

// etcdTimeout bounds each request to etcd that has no deadline of its own.
const etcdTimeout = 2 * time.Second

// etcdResync is how often the table is read whole again, whatever the watch
// said: it converges even after events a watch cannot report (an etcd that
// lost its data starts its revisions again from one).
const etcdResync = 10 * time.Second

// Etcd is the backend of etcd:// registry URLs. Every instance is the key
// <prefix>/services/<service>/<id>, whose value is the Instance as JSON,
// held by a lease of the registry's TTL that Keep renews: an instance
// whose process stops renewing drops out when its lease expires, one that
// stops cleanly revokes its lease and drops out at once. Resolve answers
// from a table that a watch on the prefix keeps current, so a lookup costs
// no round trip, and the table outlives an etcd that is away.
type Etcd struct {
	cli  *clientv3.Client
	dir  string // <prefix>/services/
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{} // closed when the watch has stopped
	// loaded is closed once the table was read whole the first time.
	loaded     chan struct{}
	loadedOnce sync.Once
	// reread asks the watch to read the table whole again (Forget).
	reread chan struct{}

	mu        sync.Mutex
	instances map[string]Instance   // key -> instance
	healthy   map[string][]Instance // service -> its healthy instances, by id
	turns     map[string]uint64     // service -> how many times it was resolved
	announced map[string]heldLease  // instance id -> the lease Announce took, for Keep
}

// heldLease is a lease and what the key it holds says.
type heldLease struct {
	id      clientv3.LeaseID
	written Instance
}

// NewEtcd returns the registry kept in the etcd cluster at endpoints
// (host:port each), under the key prefix, and starts watching it; it logs
// to log what it does on its own. It fails only on a malformed
// configuration: an etcd that is away is waited for.
func NewEtcd(endpoints []string, prefix string, log *slog.Logger) (*Etcd, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          etcdTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: etcdTimeout,
		Logger:               zap.NewNop(), // what matters is logged here, with context
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	e := &Etcd{
		cli:       cli,
		dir:       prefix + "/services/",
		log:       log,
		stop:      stop,
		done:      make(chan struct{}),
		loaded:    make(chan struct{}),
		reread:    make(chan struct{}, 1),
		instances: map[string]Instance{},
		healthy:   map[string][]Instance{},
		turns:     map[string]uint64{},
		announced: map[string]heldLease{},
	}
	go e.follow(ctx)
	return e, nil
}

// Close stops the watch and closes the connection to etcd. Instances still
// kept then are not revoked: their leases expire.
func (e *Etcd) Close() error {
	e.stop()
	<-e.done
	return e.cli.Close()
}

func (e *Etcd) key(inst Instance) string {
	return e.dir + url.PathEscape(inst.Service) + "/" + url.PathEscape(inst.ID)
}

// Announce registers inst as healthy under a lease of ttl; Keep, when it
// starts for the same instance, takes the lease over.
func (e *Etcd) Announce(ctx context.Context, inst Instance, ttl time.Duration) error {
	inst.Healthy = true
	l := heldLease{}
	if err := e.register(ctx, &l, inst, ttl); err != nil {
		return err
	}
	e.mu.Lock()
	e.announced[inst.ID] = l
	e.mu.Unlock()
	return nil
}

// Keep keeps inst's key alive every ttl/3 until ctx ends, then revokes its
// lease, which deletes the key at once. Each renewal first asks healthy,
// and writes the key again when the answer changed. While healthy blocks
// (an instance taken down by a fault), nothing is renewed and the lease
// expires, as a stopped process's does: that is why renewals are sent one
// by one rather than by the client's own keep-alive stream. A lease found
// gone (expired while etcd was away, or etcd lost its data) is replaced by
// a new one at the next renewal. Failures are logged and retried at the
// next tick.
func (e *Etcd) Keep(ctx context.Context, inst Instance, ttl time.Duration, healthy func() bool, log *slog.Logger) {
	e.mu.Lock()
	l := e.announced[inst.ID]
	delete(e.announced, inst.ID)
	e.mu.Unlock()
	beat := func() {
		inst.Healthy = healthy()
		if ctx.Err() != nil {
			return
		}
		if err := e.renew(ctx, &l, inst, ttl); err != nil && ctx.Err() == nil {
			log.Warn("registry renewal in etcd failed", slog.String("instance", inst.ID), slog.Any("err", err))
		}
	}
	beat()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if l.id == 0 {
				return
			}
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if _, err := e.cli.Revoke(rctx, l.id); err != nil {
				log.Warn("registry deregister in etcd failed; the lease will expire", slog.String("instance", inst.ID), slog.Any("err", err))
			}
			cancel()
			return
		case <-t.C:
			beat()
		}
	}
}

// renew extends l, writing inst again when it changed, or registers inst
// under a new lease when l is gone.
func (e *Etcd) renew(ctx context.Context, l *heldLease, inst Instance, ttl time.Duration) error {
	if l.id != 0 {
		rctx, cancel := context.WithTimeout(ctx, max(ttl/3, time.Second))
		defer cancel()
		_, err := e.cli.KeepAliveOnce(rctx, l.id)
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			l.id = 0 // register again, below
		case err != nil:
			return fmt.Errorf("renewing the lease: %w", err)
		case inst == l.written:
			return nil
		default:
			return e.put(rctx, l, inst)
		}
	}
	return e.register(ctx, l, inst, ttl)
}

// register writes inst under a new lease of ttl, held in l.
func (e *Etcd) register(ctx context.Context, l *heldLease, inst Instance, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	granted, err := e.cli.Grant(ctx, max(int64(ttl/time.Second), 1))
	if err != nil {
		return fail.Wrap(fail.Unavailable, err, "taking a lease in etcd")
	}
	l.id = granted.ID
	return e.put(ctx, l, inst)
}

// put writes inst under the lease l holds; a lease found gone is dropped,
// for the next renewal to take a new one.
func (e *Etcd) put(ctx context.Context, l *heldLease, inst Instance) error {
	value, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("encoding instance %s: %w", inst.ID, err)
	}
	if _, err := e.cli.Put(ctx, e.key(inst), string(value), clientv3.WithLease(l.id)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			l.id = 0
		}
		return fail.Wrap(fail.Unavailable, err, "writing instance %s to etcd", inst.ID)
	}
	l.written = inst
	return nil
}

// Resolve returns the address of a healthy instance of service, taking
// turns among them, from the table the watch keeps. Before the table was
// first read it waits for it, for etcdTimeout at most.
func (e *Etcd) Resolve(ctx context.Context, service string) (string, error) {
	if err := e.waitLoaded(ctx); err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	insts := e.healthy[service]
	if len(insts) == 0 {
		return "", fail.New(fail.Unavailable, "no healthy instance of %s", service)
	}
	n := e.turns[service]
	e.turns[service] = n + 1
	return insts[n%uint64(len(insts))].Address, nil
}

func (e *Etcd) waitLoaded(ctx context.Context) error {
	select {
	case <-e.loaded:
		return nil
	default:
	}
	t := time.NewTimer(etcdTimeout)
	defer t.Stop()
	select {
	case <-e.loaded:
		return nil
	case <-ctx.Done():
		return fail.Wrap(fail.Unavailable, ctx.Err(), "etcd not read yet")
	case <-t.C:
		return fail.New(fail.Unavailable, "registry unreachable: etcd not read yet")
	}
}

// Forget asks for the table to be read whole again, soon (at most once a
// second): the watch keeps it current, unless etcd is away.
func (e *Etcd) Forget(string) {
	select {
	case e.reread <- struct{}{}:
	default:
	}
}

// Services reads every service and its instances from etcd itself, not the
// table: an admin's listing and the gateway's health check see etcd as it
// is, and fail while it is away.
func (e *Etcd) Services(ctx context.Context) ([]Service, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.dir, clientv3.WithPrefix())
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, err, "registry unreachable: reading etcd")
	}
	byName := map[string][]Instance{}
	for _, kv := range resp.Kvs {
		if inst, ok := e.decode(kv); ok {
			byName[inst.Service] = append(byName[inst.Service], inst)
		}
	}
	out := make([]Service, 0, len(byName))
	for name, insts := range byName {
		slices.SortFunc(insts, byID)
		out = append(out, Service{Name: name, Instances: insts})
	}
	slices.SortFunc(out, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func byID(a, b Instance) int { return cmp.Compare(a.ID, b.ID) }

// decode reads an instance from its key; a value that is not one is
// logged and skipped, so one bad key hides nothing else.
func (e *Etcd) decode(kv *mvccpb.KeyValue) (Instance, bool) {
	var inst Instance
	if err := json.Unmarshal(kv.Value, &inst); err != nil || inst.Service == "" || inst.Address == "" {
		e.log.Warn("skipping a key in etcd that is not an instance", slog.String("key", string(kv.Key)))
		return Instance{}, false
	}
	return inst, true
}

// follow keeps the table current until ctx ends: it reads it whole, then
// applies the watch's changes, and reads it whole again after the watch
// breaks, every etcdResync, or when Forget asks.
func (e *Etcd) follow(ctx context.Context) {
	defer close(e.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
		if rev, err := e.reload(ctx); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("reading the registry from etcd failed; retrying", slog.Any("err", err))
			}
		} else {
			e.watch(ctx, rev)
		}
		pause.Reset(time.Second)
	}
}

// reload reads every instance and replaces the table with them; it
// returns the revision read at.
func (e *Etcd) reload(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	resp, err := e.cli.Get(rctx, e.dir, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	e.instances = map[string]Instance{}
	for _, kv := range resp.Kvs {
		if inst, ok := e.decode(kv); ok {
			e.instances[string(kv.Key)] = inst
		}
	}
	e.index()
	e.mu.Unlock()
	e.loadedOnce.Do(func() { close(e.loaded) })
	return resp.Header.Revision, nil
}

// watch applies the changes made after rev until the watch breaks, the
// table is due to be read whole, or ctx ends.
func (e *Etcd) watch(ctx context.Context, rev int64) {
	wctx, cancel := context.WithTimeout(ctx, etcdResync)
	defer cancel()
	changes := e.cli.Watch(clientv3.WithRequireLeader(wctx), e.dir, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-e.reread:
			return
		case resp, ok := <-changes:
			if !ok {
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					e.log.Warn("watching the registry in etcd broke; reading it again", slog.Any("err", err))
				}
				return
			}
			e.apply(resp.Events)
		}
	}
}

func (e *Etcd) apply(events []*clientv3.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range events {
		key := string(ev.Kv.Key)
		if ev.Type == clientv3.EventTypeDelete {
			delete(e.instances, key)
			continue
		}
		if inst, ok := e.decode(ev.Kv); ok {
			e.instances[key] = inst
		} else {
			delete(e.instances, key)
		}
	}
	e.index()
}

// index rebuilds the healthy instances of every service from the table.
// The caller holds mu.
func (e *Etcd) index() {
	e.healthy = map[string][]Instance{}
	for _, inst := range e.instances {
		if inst.Healthy {
			e.healthy[inst.Service] = append(e.healthy[inst.Service], inst)
		}
	}
	for _, insts := range e.healthy {
		slices.SortFunc(insts, byID)
	}
}
