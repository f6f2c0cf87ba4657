package queue_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
	"github.com/callbackd/callbackd/internal/redistest"
	"github.com/callbackd/callbackd/queue"
)

// A Redis that may drop promises says so: an eviction policy deletes keys under memory
// pressure, and without AOF a restart forgets the latest writes. A Redis set up as the
// README asks (noeviction, appendonly yes) gives no warning.
func TestDurabilityWarnsOfARedisThatMayLosePromises(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		aof    bool
		policy string
		want   []string // one substring per expected warning
	}{
		{"set up as asked", true, "noeviction", nil},
		{"AOF off", false, "noeviction", []string{"appendonly is off"}},
		{"evicting keys", true, "allkeys-lru", []string{"maxmemory-policy is allkeys-lru"}},
		{"both", false, "volatile-ttl", []string{"maxmemory-policy is volatile-ttl", "appendonly is off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{AppendOnly: tc.aof})
			rdb := srv.Client()
			if err := rdb.ConfigSet(ctx, "maxmemory-policy", tc.policy).Err(); err != nil {
				t.Fatal(err)
			}
			store, err := queue.New(rdb, queue.Options{Clock: clock.Real{}, Queues: []string{"support"}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.Durability(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q; want %d naming %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q; want it to say %q", i, got[i], w)
				}
			}
		})
	}
}

// A store that waits for more replicas than its primary has says so at start: each promise
// would wait out the timeout unacknowledged.
func TestDurabilityWarnsOfMissingReplicas(t *testing.T) {
	ctx := context.Background()
	primary := redistest.Start(t, redistest.Options{AppendOnly: true})
	redistest.Start(t, redistest.Options{ReplicaOf: primary.Addr()})
	for _, tc := range []struct {
		name     string
		replicas int
		want     []string
	}{
		{"waiting for none", 0, nil},
		{"waiting for the one it has", 1, nil},
		{"waiting for two", 2, []string{"redis.wait_replicas is 2 but the primary has 1 replicas connected"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := queue.New(primary.Client(), queue.Options{Clock: clock.Real{}, Queues: []string{"support"}, WaitReplicas: tc.replicas})
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.Durability(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q; want %d naming %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q; want it to say %q", i, got[i], w)
				}
			}
		})
	}
}

func TestDurabilityAsksEveryClusterPrimary(t *testing.T) {
	node := redistest.Start(t, redistest.Options{Cluster: true})
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{node.Addr()}})
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := queue.New(rdb, queue.Options{Clock: clock.Real{}, Queues: []string{"support"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Durability(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(node.Addr(), ":")
	if len(got) != 1 || !strings.Contains(got[0], ":"+port+": appendonly is off") {
		t.Errorf("warnings %q; want the one primary's AOF warning, naming the node", got)
	}
}

func TestDurabilityOfAnUnreachableRedisIsAnError(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := queue.New(rdb, queue.Options{Clock: clock.Real{}, Queues: []string{"support"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Durability(context.Background()); err == nil || !strings.Contains(err.Error(), "eviction policy") {
		t.Errorf("Durability on a refused connection = %v; want an error saying what was being read", err)
	}
}
