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
}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	opts Options
	dir  string
	port int
	proc *os.Process
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
	s := &Server{t: t, opts: opts, dir: t.TempDir()}
	var lastErr error
	for try := 0; try < 5; try++ {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("finding a free loopback port for redis-server: %v", err)
		}
		if lastErr = s.start(bin); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
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
	bin, _ := exec.LookPath("redis-server")
	if err := s.start(bin); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

func (s *Server) start(bin string) error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", "",
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"))
	}
	cmd := exec.Command(bin, args...)
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
			return fmt.Errorf("redis-server on port %d exited: %v; log: %s", s.port, err, tail(logPath))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
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
			return fmt.Errorf("redis-server on port %d was not ready within 10s: %v", s.port, err)
		}
		<-wall.After(20 * time.Millisecond)
	}
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
