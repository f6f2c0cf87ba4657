package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions says how a Sentinel deployment runs. The zero value is a fast one for tests.
type SentinelOptions struct {
	// MasterName is what the sentinels call the primary; "callbackd" when empty.
	MasterName string
	// DownAfter is how long the primary must not answer before a sentinel thinks it down
	// (down-after-milliseconds); 1s when zero.
	DownAfter time.Duration
	// FailoverTimeout bounds one failover attempt and spaces retries (failover-timeout);
	// 4s when zero.
	FailoverTimeout time.Duration
	// AppendOnly turns on AOF on the primary and the replica.
	AppendOnly bool
}

// Sentinel is a Redis Sentinel deployment owned by a test, all on loopback: a primary, one
// replica of it and three sentinels watching them with a quorum of two — the smallest
// deployment that survives the loss of the primary (or of one sentinel).
type Sentinel struct {
	t          testing.TB
	MasterName string
	// Servers are the primary and the replica as started; which one is the primary now is
	// what the sentinels say (Primary).
	Servers   []*Server
	Sentinels []*Server
}

// StartSentinel starts a primary, its replica and three sentinels for t and returns once the
// sentinels know each other and the replica, so a failover can happen. It skips the test
// when redis-sentinel is not installed, and fails it when redis-server is not.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		t.Skip("redis-sentinel is not installed, so the Sentinel failover tests cannot run; install it with `apt-get install -y redis-sentinel`")
	}
	if o.MasterName == "" {
		o.MasterName = "callbackd"
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 4 * time.Second
	}
	d := &Sentinel{t: t, MasterName: o.MasterName}
	primary := Start(t, Options{AppendOnly: o.AppendOnly})
	replica := Start(t, Options{AppendOnly: o.AppendOnly, ReplicaOf: primary.Addr()})
	d.Servers = []*Server{primary, replica}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s %[4]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		o.MasterName, primary.port, o.DownAfter.Milliseconds(), o.FailoverTimeout.Milliseconds())
	for i := 0; i < 3; i++ {
		s := &Server{t: t, bin: bin, dir: t.TempDir()}
		// Sentinel rewrites its config file with what it learns, so each has its own.
		s.sentinelConf = filepath.Join(s.dir, "sentinel.conf")
		if err := os.WriteFile(s.sentinelConf, []byte(conf), 0o600); err != nil {
			t.Fatalf("writing sentinel config: %v", err)
		}
		s.launch("redis-sentinel")
		d.Sentinels = append(d.Sentinels, s)
	}
	d.awaitAcquainted(replica.Addr())
	return d
}

// Addrs are the sentinels' host:port addresses, what a client is configured with.
func (d *Sentinel) Addrs() []string {
	out := make([]string, len(d.Sentinels))
	for i, s := range d.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// Client returns a go-redis client that finds the primary through the sentinels and follows
// a failover; closed when the test ends.
func (d *Sentinel) Client() *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: d.MasterName, SentinelAddrs: d.Addrs()})
	d.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Primary is the server every live sentinel names as the primary; false while they disagree
// or name a server that is not one of d.Servers answering as a primary.
func (d *Sentinel) Primary() (*Server, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr := ""
	for _, s := range d.Sentinels {
		if s.Killed() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		got, err := c.GetMasterAddrByName(ctx, d.MasterName).Result()
		c.Close()
		if err != nil || len(got) != 2 {
			return nil, false
		}
		a := got[0] + ":" + got[1]
		if addr != "" && a != addr {
			return nil, false
		}
		addr = a
	}
	for _, srv := range d.Servers {
		if srv.Addr() != addr || srv.Killed() {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		return srv, err == nil && strings.Contains(info, "role:master")
	}
	return nil, false
}

// KillPrimary kills the current primary with SIGKILL, as a crash would, and returns it.
func (d *Sentinel) KillPrimary() *Server {
	d.t.Helper()
	p, ok := d.Primary()
	if !ok {
		d.t.Fatalf("killing the primary: the sentinels do not agree on one")
	}
	p.Stop()
	return p
}

// AwaitFailover waits until the sentinels agree on a primary other than old and it serves as
// one, and returns it. Sentinel takes seconds (down-after, then an election); the limit
// only guards against a hang.
func (d *Sentinel) AwaitFailover(old *Server) *Server {
	d.t.Helper()
	var p *Server
	if !poll(60*time.Second, func() bool {
		var ok bool
		p, ok = d.Primary()
		return ok && p != old
	}) {
		d.t.Fatalf("no failover away from %s within 60s; sentinel log: %s", old.Addr(), tail(filepath.Join(d.Sentinels[0].dir, "redis.log")))
	}
	return p
}

// awaitAcquainted waits until every sentinel knows the two others and the replica: before
// that, a dead primary could not be failed over.
func (d *Sentinel) awaitAcquainted(replica string) {
	d.t.Helper()
	ctx := context.Background()
	for _, s := range d.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		var problem string
		ok := poll(30*time.Second, func() bool {
			peers, err := c.Sentinels(ctx, d.MasterName).Result()
			if err != nil || len(peers) != len(d.Sentinels)-1 {
				problem = fmt.Sprintf("knows %d other sentinels (%v)", len(peers), err)
				return false
			}
			replicas, err := c.Replicas(ctx, d.MasterName).Result()
			for _, r := range replicas {
				if r["ip"]+":"+r["port"] == replica && r["flags"] == "slave" && r["master-link-status"] == "ok" {
					return true
				}
			}
			problem = fmt.Sprintf("does not see replica %s synced: %v (%v)", replica, replicas, err)
			return false
		})
		c.Close()
		if !ok {
			d.t.Fatalf("sentinel %s %s after 30s", s.Addr(), problem)
		}
	}
}
