// Package redistest starts a real redis-server for one test, on a free loopback port, and
// stops it when the test ends. callbackd's tests never talk to a Redis mock: the Lua scripts
// and their atomicity are the thing under test.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callbackd/callbackd/internal/clock"
)

// Options says how the server runs.
type Options struct {
	// AppendOnly turns on AOF with fsync always, for tests that restart Redis and expect
	// every accepted write to survive.
	AppendOnly bool
	// Cluster runs the server as a one-node Redis Cluster owning every slot, for tests that
	// prove all keys of a command or script share one slot. Connect with a ClusterClient.
	Cluster bool
	// ReplicaOf, a primary's host:port, starts the server as its replica; Start returns once
	// the replica's link to the primary is up and the first sync is done.
	ReplicaOf string
	// Wrapper, when set, is a command line that runs redis-server: the server is started as
	// Wrapper followed by redis-server and its options (valgrind, for a benchmark that counts
	// the server's instructions). The wrapper must run the server in its own process.
	Wrapper []string
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	opts Options
	bin  string
	// sentinelConf, when set, makes the process a Redis Sentinel reading (and rewriting) it.
	sentinelConf string
	dir          string
	port         int
	proc         *os.Process
	// exited receives the process's exit once; the goroutine that waits on it owns Wait.
	exited chan error
}

// Start runs redis-server for t and registers its shutdown with t.Cleanup. It fails the test
// with an instruction when redis-server is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; run `make test` (it installs it with apt-get) or `apt-get install redis-server`")
	}
	s := &Server{t: t, opts: opts, bin: bin, dir: t.TempDir()}
	s.launch("redis-server")
	if opts.ReplicaOf != "" {
		s.awaitSync()
	}
	return s
}

// launch starts the process on the first free port that works, for t.
func (s *Server) launch(what string) {
	s.t.Helper()
	var lastErr error
	for try := 0; try < 5; try++ {
		var err error
		s.port, err = freePort()
		if err != nil {
			s.t.Fatalf("finding a free loopback port for %s: %v", what, err)
		}
		if lastErr = s.start(); lastErr == nil {
			s.t.Cleanup(s.Stop)
			return
		}
	}
	s.t.Fatalf("starting %s: %v", what, lastErr)
}

// awaitSync waits until a replica's link to its primary is up: from then on it has the
// primary's data set and receives its writes.
func (s *Server) awaitSync() {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	var info string
	if !poll(30*time.Second, func() bool {
		info, _ = c.Info(context.Background(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	}) {
		s.t.Fatalf("replica %s of %s did not sync within 30s; INFO replication: %q", s.Addr(), s.opts.ReplicaOf, info)
	}
}

// poll calls cond until it holds or limit (a guard against a hang, not a timing) passes.
func poll(limit time.Duration, cond func() bool) bool {
	wall := clock.Real{}
	deadline := wall.Now().Add(limit)
	for !cond() {
		if wall.Now().After(deadline) {
			return false
		}
		<-wall.After(20 * time.Millisecond)
	}
	return true
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL: like a crash, nothing is flushed that AOF did not already
// write). Stopping twice is harmless.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	_ = s.proc.Kill()
	<-s.exited
	s.proc = nil
}

// Restart kills the server and starts it again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting %s: %v", s.bin, err)
	}
}

// PID is the server's process id (the wrapper's, which runs the server, under Options.Wrapper);
// 0 once stopped.
func (s *Server) PID() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Killed reports whether the server was stopped (and not restarted).
func (s *Server) Killed() bool { return s.proc == nil }

func (s *Server) args() []string {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	if s.sentinelConf != "" {
		// A config file first, then the options: redis-server reads them in that order.
		return append([]string{s.sentinelConf}, args...)
	}
	// A replica's first sync would wait 5s for others to share it; a test has no others.
	args = append(args, "--save", "", "--repl-diskless-sync-delay", "0")
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"))
	}
	if s.opts.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(s.opts.ReplicaOf)
		args = append(args, "--replicaof", host, port)
	}
	return args
}

func (s *Server) start() error {
	bin := s.bin
	cmd := exec.Command(bin, s.args()...)
	if w := s.opts.Wrapper; len(w) > 0 {
		cmd = exec.Command(w[0], append(append(w[1:len(w):len(w)], bin), s.args()...)...)
	}
	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating redis log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()

	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	wall := clock.Real{}
	deadline := wall.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%s on port %d exited: %v; log: %s", bin, s.port, err, tail(logPath))
		default:
		}
		// A plain dial first: go-redis logs every failed dial of its pool, and a server under
		// valgrind takes seconds before it listens.
		err := dialOnce(s.Addr())
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err = c.Ping(ctx).Err()
			cancel()
		}
		if err == nil && s.opts.Cluster {
			err = s.clusterReady(c)
		}
		if err == nil {
			s.proc, s.exited = cmd.Process, exited
			return nil
		}
		if wall.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s on port %d was not ready within 10s: %v", bin, s.port, err)
		}
		<-wall.After(20 * time.Millisecond)
	}
}

// dialOnce reports whether addr accepts a TCP connection.
func dialOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	return conn.Close()
}

// clusterReady gives a fresh cluster node every slot (a restarted one keeps them in
// nodes.conf) and reports whether the cluster serves yet.
func (s *Server) clusterReady(c *redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_state:ok") {
		return nil
	}
	if strings.Contains(info, "cluster_slots_assigned:0") {
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
			return fmt.Errorf("assigning every slot to the cluster node: %w", err)
		}
	}
	return errors.New("cluster state is not ok yet")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}
