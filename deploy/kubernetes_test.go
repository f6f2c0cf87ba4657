package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/callbackd/callbackd/config"
	"github.com/callbackd/callbackd/daemon"
)

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Deployment
		Strategy struct{ Type string } `yaml:"strategy"`
		// A Deployment's selector is {matchLabels: …}, a Service's the labels themselves.
		Selector yaml.Node `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		// Service
		PublishNotReadyAddresses bool `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Name       string    `yaml:"name"`
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds int  `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  bool `yaml:"automountServiceAccountToken"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name string   `yaml:"name"`
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	// The container's securityContext is checked on its own: the pod's may be overridden here.
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

// k8sManifests is every object of the files kustomization.yaml lists, by kind.
func k8sManifests(t *testing.T) map[string][]k8sObject {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &kust)
	if len(kust.Resources) == 0 {
		t.Fatal("kubernetes/kustomization.yaml lists no resources")
	}
	byKind := map[string][]k8sObject{}
	for _, r := range kust.Resources {
		for _, o := range readObjects(t, "kubernetes/"+r) {
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	return byKind
}

func readObjects(t *testing.T, file string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(false)
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: an object without apiVersion, kind or metadata.name", file)
		}
		out = append(out, o)
	}
}

func only(t *testing.T, objs map[string][]k8sObject, kind string) k8sObject {
	t.Helper()
	if len(objs[kind]) != 1 {
		t.Fatalf("want one %s in deploy/kubernetes, have %d", kind, len(objs[kind]))
	}
	return objs[kind][0]
}

// theDaemon is the Deployment's callbackd container.
func theDaemon(t *testing.T, d k8sObject) container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "callbackd" {
			return c
		}
	}
	t.Fatal("the Deployment has no container named callbackd")
	return container{}
}

// portNumber resolves a probe's or Service's port (a number or a container port's name).
func portNumber(t *testing.T, c container, n yaml.Node) int {
	t.Helper()
	if p, err := strconv.Atoi(n.Value); err == nil {
		return p
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort
		}
	}
	t.Fatalf("port %q names no port of the container", n.Value)
	return 0
}

// k8sConfig is the ConfigMap's file the container's -c names, and that path.
func k8sConfig(t *testing.T, objs map[string][]k8sObject) ([]byte, string) {
	t.Helper()
	d := only(t, objs, "Deployment")
	c := theDaemon(t, d)
	i := slices.Index(c.Args, "-c")
	if len(c.Args) < 3 || c.Args[0] != "run" || i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("container args %q; want run -c FILE", c.Args)
	}
	file := c.Args[i+1]
	for _, m := range c.VolumeMounts {
		if m.MountPath != path.Dir(file) {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("the config volume at %s is mounted read-write", m.MountPath)
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, cm := range objs["ConfigMap"] {
				if cm.Metadata.Name == v.ConfigMap.Name {
					data, ok := cm.Data[path.Base(file)]
					if !ok {
						t.Fatalf("ConfigMap %s has no key %s, the file run -c %s reads", cm.Metadata.Name, path.Base(file), file)
					}
					return []byte(data), file
				}
			}
			t.Fatalf("volume %s names ConfigMap %s, which deploy/kubernetes does not define", v.Name, v.ConfigMap.Name)
		}
	}
	t.Fatalf("run -c %s: no ConfigMap volume is mounted at %s", file, path.Dir(file))
	return nil, ""
}

// k8sEnviron is the container's environment as the kubelet would set it, each Secret value
// replaced by a stand-in that is not the example's placeholder.
func k8sEnviron(c container) []string {
	var env []string
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			env = append(env, e.Name+"="+*e.Value)
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env = append(env, e.Name+"=from-the-secret-"+e.ValueFrom.SecretKeyRef.Key)
		}
	}
	return env
}

// The kubelet probes the paths the daemon serves for them, on the port the config listens on:
// /healthz (alive; no token) and /readyz (Redis and Asterisk reachable), within timeouts
// longer than /readyz's own bound.
func TestTheKubernetesProbesHitTheDaemonsHealthEndpoints(t *testing.T) {
	objs := k8sManifests(t)
	c := theDaemon(t, only(t, objs, "Deployment"))
	data, _ := k8sConfig(t, objs)
	cfg, err := config.ParseEnviron(data, k8sEnviron(c))
	if err != nil {
		t.Fatalf("the ConfigMap's config with the Deployment's environment: %v", err)
	}
	_, portStr, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	listenPort, _ := strconv.Atoi(portStr)
	if host, _, _ := net.SplitHostPort(cfg.HTTP.Listen); host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("http.listen %s: the kubelet and Prometheus reach the pod on its own address, not %s", cfg.HTTP.Listen, host)
	}
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probes %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got := portNumber(t, c, p.probe.HTTPGet.Port); got != listenPort {
			t.Errorf("%s probes port %d; the config's http.listen is %s", p.name, got, cfg.HTTP.Listen)
		}
	}
	// /readyz gives up on a hung Redis after about 2 s (api/probes.go); the probe must wait
	// longer, or a slow answer reads as a timeout instead of the cause.
	if c.ReadinessProbe != nil && c.ReadinessProbe.TimeoutSeconds < 3 {
		t.Errorf("readinessProbe timeoutSeconds %d; want at least 3", c.ReadinessProbe.TimeoutSeconds)
	}
}

// The container runs as the image's non-root user, cannot gain privileges, has no
// capabilities and a read-only root filesystem.
func TestTheKubernetesContainerRunsNonRootReadOnly(t *testing.T) {
	d := only(t, k8sManifests(t), "Deployment")
	pod := d.Spec.Template.Spec
	c := theDaemon(t, d)
	nonRoot := pod.SecurityContext.RunAsNonRoot
	if c.SecurityContext.RunAsNonRoot != nil {
		nonRoot = c.SecurityContext.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("runAsNonRoot is not true")
	}
	uid := pod.SecurityContext.RunAsUser
	if c.SecurityContext.RunAsUser != nil {
		uid = c.SecurityContext.RunAsUser
	}
	cf, err := os.ReadFile("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):`).FindSubmatch(cf)
	if uid == nil || m == nil || strconv.Itoa(*uid) != string(m[1]) {
		t.Errorf("runAsUser %v; want the Containerfile's USER uid (%s)", uid, m)
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("capabilities drop %v; want ALL", sc.Capabilities.Drop)
	}
	if pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token; callbackd never talks to the Kubernetes API")
	}
}

// Every password and the token come from the Secret, by keys secret.example.yaml shows; none
// is written into the Deployment or the ConfigMap.
func TestTheKubernetesSecretsComeFromASecret(t *testing.T) {
	objs := k8sManifests(t)
	if len(objs["Secret"]) != 0 {
		t.Error("kustomization.yaml applies a Secret: placeholder secrets must never be applied by accident")
	}
	example := readObjects(t, "kubernetes/secret.example.yaml")
	if len(example) != 1 || example[0].Kind != "Secret" {
		t.Fatalf("kubernetes/secret.example.yaml: want one Secret, have %v", example)
	}
	c := theDaemon(t, only(t, objs, "Deployment"))
	secretVar := regexp.MustCompile(`PASSWORD|TOKEN`)
	want := []string{"CALLBACKD_ASTERISK_0_PASSWORD", "CALLBACKD_REDIS_PASSWORD", "CALLBACKD_HTTP_TOKEN"}
	for _, e := range c.Env {
		if !secretVar.MatchString(e.Name) {
			continue
		}
		want = slices.DeleteFunc(want, func(s string) bool { return s == e.Name })
		if e.Value != nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s is not set from a Secret", e.Name)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != example[0].Metadata.Name {
			t.Errorf("%s comes from Secret %s; secret.example.yaml shows %s", e.Name, ref.Name, example[0].Metadata.Name)
		}
		if _, ok := example[0].StringData[ref.Key]; !ok {
			t.Errorf("%s comes from key %s, which secret.example.yaml does not show", e.Name, ref.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("the Deployment does not set %v from the Secret", want)
	}
	// Without the Secret's variables the daemon refuses the ConfigMap's config for want of
	// exactly those values: none of them is written into it.
	data, _ := k8sConfig(t, objs)
	_, err := config.ParseEnviron(data, nil)
	if err == nil || !strings.Contains(err.Error(), "asterisk[0].password: required") || !strings.Contains(err.Error(), "http.token: required") {
		t.Errorf("the ConfigMap's config without the Secret: %v; want asterisk[0].password and http.token missing", err)
	}
	if bytes.Contains(data, []byte("password:")) || bytes.Contains(data, []byte("token:")) {
		t.Error("the ConfigMap's config has a password: or token: key; they belong in the Secret")
	}
}

// The ConfigMap's config is valid with the Deployment's environment, the pod waits for
// dialer.shutdown_grace on a stop, and the example's caller id and agents in it are refused
// by `run` (naming them) until the operator puts in their own.
func TestTheKubernetesConfigIsTheOneTheDaemonRuns(t *testing.T) {
	objs := k8sManifests(t)
	d := only(t, objs, "Deployment")
	data, file := k8sConfig(t, objs)
	cfg, err := config.ParseEnviron(data, k8sEnviron(theDaemon(t, d)))
	if err != nil {
		t.Fatalf("%s (the ConfigMap) with the Deployment's environment: %v", file, err)
	}
	grace := time.Duration(d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= time.Duration(cfg.Dialer.ShutdownGrace)+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s; want well over dialer.shutdown_grace (%s), or a stop ends as a crash",
			grace, time.Duration(cfg.Dialer.ShutdownGrace))
	}
	var flagged []string
	for _, p := range config.Placeholders(cfg) {
		flagged = append(flagged, p.Path)
	}
	for _, want := range []string{"dialer.caller_id.number", "agents[0]"} {
		if !slices.Contains(flagged, want) {
			t.Errorf("config.Placeholders does not flag %s; the ConfigMap's stand-ins must be refused until changed (flagged: %v)", want, flagged)
		}
	}
}

// The Service sends Prometheus to the pod's metrics port, also while the pod is not ready
// (when its metrics say why).
func TestTheKubernetesServiceExposesTheMetricsPort(t *testing.T) {
	objs := k8sManifests(t)
	d := only(t, objs, "Deployment")
	svc := only(t, objs, "Service")
	var svcSel map[string]string
	var depSel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := svc.Spec.Selector.Decode(&svcSel); err != nil || len(svcSel) == 0 {
		t.Fatalf("the Service's selector: %v (%v)", svcSel, err)
	}
	if err := d.Spec.Selector.Decode(&depSel); err != nil || len(depSel.MatchLabels) == 0 {
		t.Fatalf("the Deployment's selector: %v (%v)", depSel, err)
	}
	for k, v := range svcSel {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the Deployment's pods do not carry", k, v)
		}
	}
	for k, v := range depSel.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Deployment selects %s=%s, which its own pods do not carry", k, v)
		}
	}
	c := theDaemon(t, d)
	if len(svc.Spec.Ports) != 1 || portNumber(t, c, svc.Spec.Ports[0].TargetPort) != 9464 {
		t.Errorf("Service ports %+v; want one, to the container's 9464", svc.Spec.Ports)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the metrics Service drops pods that are not ready; those are the ones to look at")
	}
}

// kubectl, where installed, renders the kustomization (offline: kustomize reads only these files).
func TestTheKustomizationRenders(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: the kustomization is not rendered (the other tests parse the files)")
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v\n%s", err, out)
	}
	for _, want := range []string{"kind: Deployment", "kind: Service", "kind: ConfigMap", "namespace: callbackd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the rendered kustomization lacks %q", want)
		}
	}
}

// The liveness probe, which carries no credentials, gets 200 from the daemon the manifests
// configure, token and all: a live pod is never restarted for a 401.
func TestTheKubernetesLivenessProbeNeedsNoToken(t *testing.T) {
	objs := k8sManifests(t)
	c := theDaemon(t, only(t, objs, "Deployment"))
	data, _ := k8sConfig(t, objs)
	cfg, err := config.ParseEnviron(data, k8sEnviron(c))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	// Listen "-": built, not run; nothing is served or dialled, the handler alone answers.
	d, err := daemon.New(daemon.Options{Config: cfg, Redis: rdb, Instance: "kubernetes-test", Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.LivenessProbe.HTTPGet.Path, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET %s without a token = %d %s; want 200", c.LivenessProbe.HTTPGet.Path, rec.Code, rec.Body)
	}
}
