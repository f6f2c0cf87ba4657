package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Durability reads what Redis itself promises about the store's keys and returns one warning
// for each way it can lose a promise callbackd accepted: an eviction policy other than
// noeviction (under memory pressure Redis deletes keys, promises among them, without a word)
// and AOF off (a restart loses every write since the last snapshot), and, with
// Options.WaitReplicas set, fewer replicas connected than it waits for (every promise would
// wait the whole timeout and still be at risk in a failover). None means none. On Redis
// Cluster every primary is asked.
func (s *Store) Durability(ctx context.Context) ([]string, error) {
	var (
		mu    sync.Mutex // ForEachMaster calls back concurrently
		infos []string
	)
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			info, err := n.Info(ctx, "memory", "persistence", "replication").Result()
			mu.Lock()
			defer mu.Unlock()
			infos = append(infos, n.Options().Addr+"\n"+info)
			return err
		})
	default:
		var info string
		info, err = s.rdb.Info(ctx, "memory", "persistence", "replication").Result()
		infos = append(infos, "\n"+info)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Redis' eviction policy and persistence: %w", err)
	}
	var warnings []string
	for _, info := range infos {
		addr, body, _ := strings.Cut(info, "\n")
		where := "redis"
		if addr != "" {
			where = "redis " + addr
		}
		fields := infoFields(body)
		if p := fields["maxmemory_policy"]; p != "" && p != "noeviction" {
			warnings = append(warnings, fmt.Sprintf("%s: maxmemory-policy is %s, so under memory pressure Redis deletes keys, promises among them; set it to noeviction", where, p))
		}
		if fields["aof_enabled"] == "0" {
			warnings = append(warnings, where+": appendonly is off, so a Redis restart loses the promises made since its last snapshot; set appendonly yes")
		}
		if n, err := strconv.Atoi(fields["connected_slaves"]); s.replicas > 0 && err == nil && n < s.replicas {
			warnings = append(warnings, fmt.Sprintf("%s: redis.wait_replicas is %d but the primary has %d replicas connected, "+
				"so every new promise waits redis.wait_timeout (%v) and a failover can still lose it; add replicas or lower wait_replicas",
				where, s.replicas, n, s.waitFor))
		}
	}
	return warnings, nil
}

// infoFields reads the "key:value" lines of an INFO reply.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}
