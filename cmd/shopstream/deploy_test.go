package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

const kubeDir = "../../deploy/kubernetes"

// kubeObject decodes one manifest strictly (an unknown or misspelt field is an
// error) into its Kubernetes API type and checks its apiVersion and kind.
func kubeObject[T any](t *testing.T, file, apiVersion, kind string) *T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\n---")) {
		t.Fatalf("%s: one object per file", file)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if meta.APIVersion != apiVersion || meta.Kind != kind {
		t.Fatalf("%s: %s %s, want %s %s", file, meta.APIVersion, meta.Kind, apiVersion, kind)
	}
	obj := new(T)
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj
}

// kustomization is the part of kustomize's Kustomization type these files use.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// manifests are the deploy/kubernetes files, decoded.
type manifests struct {
	cm      *corev1.ConfigMap
	secret  *corev1.Secret
	deploy  *appsv1.Deployment
	svc     *corev1.Service
	pdb     *policyv1.PodDisruptionBudget
	ingress *networkingv1.Ingress
	migrate *batchv1.Job
	kust    *kustomization
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	return manifests{
		cm:      kubeObject[corev1.ConfigMap](t, "configmap.yaml", "v1", "ConfigMap"),
		secret:  kubeObject[corev1.Secret](t, "secret.yaml", "v1", "Secret"),
		deploy:  kubeObject[appsv1.Deployment](t, "deployment.yaml", "apps/v1", "Deployment"),
		svc:     kubeObject[corev1.Service](t, "service.yaml", "v1", "Service"),
		pdb:     kubeObject[policyv1.PodDisruptionBudget](t, "pdb.yaml", "policy/v1", "PodDisruptionBudget"),
		ingress: kubeObject[networkingv1.Ingress](t, "ingress.yaml", "networking.k8s.io/v1", "Ingress"),
		migrate: kubeObject[batchv1.Job](t, "migrate-job.yaml", "batch/v1", "Job"),
		kust:    kubeObject[kustomization](t, "kustomization.yaml", "kustomize.config.k8s.io/v1beta1", "Kustomization"),
	}
}

// env is the environment a container of the manifests gets: the ConfigMap's
// and the Secret's entries, which its envFrom must name.
func (m manifests) env(t *testing.T, where string, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	var fromCM, fromSecret bool
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil && from.ConfigMapRef.Name == m.cm.Name:
			fromCM = true
			for k, v := range m.cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil && from.SecretRef.Name == m.secret.Name:
			fromSecret = true
			for k, v := range m.secret.StringData {
				env[k] = v
			}
		default:
			t.Errorf("%s: envFrom %+v names neither the ConfigMap nor the Secret", where, from)
		}
	}
	if !fromCM || !fromSecret {
		t.Errorf("%s: envFrom takes the ConfigMap: %v, the Secret: %v; want both", where, fromCM, fromSecret)
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// isVariable says whether name is one of the binary's variables (config.Vars,
// where NAME_<ENTITY> stands for one per entity).
func isVariable(name string) bool {
	for _, v := range config.Vars {
		if v.Name == name {
			return true
		}
		if prefix, ok := strings.CutSuffix(v.Name, "<ENTITY>"); ok {
			if e, ok := strings.CutPrefix(name, prefix); ok && slices.Contains(config.Entities, strings.ToLower(e)) {
				return true
			}
		}
	}
	// SECRET_COLUMNS_<ENTITY> and IGNORED_COLUMNS_<ENTITY> are documented in
	// their base variable's help.
	for _, base := range []string{"SECRET_COLUMNS_", "IGNORED_COLUMNS_"} {
		if e, ok := strings.CutPrefix(name, base); ok && slices.Contains(config.Entities, strings.ToLower(e)) {
			return true
		}
	}
	return false
}

func varDefault(name string) string {
	for _, v := range config.Vars {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// TestKubernetesManifests: deploy/kubernetes decodes strictly into the
// Kubernetes API types, and what it says matches the binary: the ports are
// LISTEN_ADDR's and METRICS_ADDR's, every variable is one shopstream reads and
// the whole environment loads, the termination grace outlasts preStop plus
// the shutdown timeout, selectors select the pods, and the ingress serves
// PUBLIC_URL's host with timeouts above the ping interval.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	d := m.deploy
	pod := d.Spec.Template
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector %v does not select its pods %v (%v)", d.Spec.Selector, pod.Labels, err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) > 0 {
		t.Errorf("container runs %v %v, want the image's entrypoint with [serve]", c.Command, c.Args)
	}
	env := m.env(t, "deployment", c)
	for k := range env {
		if !isVariable(k) {
			t.Errorf("%s is not a variable shopstream reads (internal/config Vars)", k)
		}
	}
	for _, k := range []string{"DATABASE_URL", "LISTEN_DATABASE_URL"} {
		if _, inCM := m.cm.Data[k]; inCM {
			t.Errorf("%s is in the ConfigMap: credentials go in the Secret", k)
		}
		if _, ok := m.secret.StringData[k]; !ok {
			t.Errorf("the Secret has no %s", k)
		}
	}
	if len(m.secret.Data) > 0 {
		t.Error("the Secret's values belong in stringData, where an operator can read what to replace")
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the manifests' environment does not load: %v", err)
	}

	// Ports: the container's, the binary's default, LISTEN_ADDR's.
	httpPort, ok := containerPort(c, "http")
	if !ok {
		t.Fatal("no container port named http")
	}
	if want := port(t, varDefault("LISTEN_ADDR")); httpPort != want {
		t.Errorf("container port http %d, the binary's default LISTEN_ADDR port %d", httpPort, want)
	}
	if got := port(t, cfg.ListenAddr); got != httpPort {
		t.Errorf("LISTEN_ADDR %s, container port http %d", cfg.ListenAddr, httpPort)
	}
	if host, _, _ := net.SplitHostPort(cfg.ListenAddr); host != "0.0.0.0" && host != "" {
		t.Errorf("LISTEN_ADDR %s: the kubelet and the Service reach the pod on its own address, not %s", cfg.ListenAddr, host)
	}
	metricsPort, ok := containerPort(c, "metrics")
	if cfg.MetricsAddr != "" {
		if !ok || port(t, cfg.MetricsAddr) != metricsPort {
			t.Errorf("METRICS_ADDR %s, container port metrics %d (%v)", cfg.MetricsAddr, metricsPort, ok)
		}
		if a := pod.Annotations["prometheus.io/port"]; a != strconv.Itoa(int(metricsPort)) {
			t.Errorf("prometheus.io/port %q, metrics port %d", a, metricsPort)
		}
	}

	// Probes on the real port and endpoints (TestKubernetesPod requests them).
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if p.HTTPGet.Path != want {
			t.Errorf("%s probe on %s, want %s", name, p.HTTPGet.Path, want)
		}
		if pp := p.HTTPGet.Port; pp.StrVal != "http" && pp.IntVal != httpPort {
			t.Errorf("%s probe on port %s, want http (%d)", name, pp.String(), httpPort)
		}
		if p.TimeoutSeconds <= 1 {
			t.Errorf("%s probe timeout %d s: /readyz may take its 1 s database ping", name, p.TimeoutSeconds)
		}
	}

	// Shutdown: preStop, then SIGTERM and the server's shutdown timeout, all
	// within the grace period, so that every socket gets its 1001.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep: the pod would get SIGTERM while the ingress still sends it new connections")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if preStop < 5*time.Second {
		t.Errorf("preStop sleeps %v: endpoints take a few seconds to drop the pod", preStop)
	}
	if pod.Spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= preStop+shutdownTimeout {
		t.Errorf("termination grace %v is not above preStop %v + shutdown timeout %v: the kubelet would kill sockets before their 1001", grace, preStop, shutdownTimeout)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Error("a rolling update should keep every replica until its successor is ready (maxUnavailable: 0)")
	}

	// The PodDisruptionBudget and the Service select the pods.
	pdbSel, err := metav1.LabelSelectorAsSelector(m.pdb.Spec.Selector)
	if err != nil || !pdbSel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the PodDisruptionBudget's selector does not select the pods (%v)", err)
	}
	if ma := m.pdb.Spec.MinAvailable; ma == nil || ma.IntValue() < 1 || ma.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("PodDisruptionBudget minAvailable %v: want at least 1 and fewer than the replicas", ma)
	}
	if !labels.SelectorFromSet(m.svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(m.svc.Spec.Selector) == 0 {
		t.Errorf("the Service's selector %v does not select the pods %v", m.svc.Spec.Selector, pod.Labels)
	}
	if labels.SelectorFromSet(m.svc.Spec.Selector).Matches(labels.Set(m.migrate.Spec.Template.Labels)) {
		t.Error("the Service would send traffic to the migrate Job's pod")
	}
	var svcPort *corev1.ServicePort
	for i, p := range m.svc.Spec.Ports {
		if p.TargetPort.StrVal == "http" || p.TargetPort.IntVal == httpPort {
			svcPort = &m.svc.Spec.Ports[i]
		} else {
			t.Errorf("Service port %s targets %s, not the container's http port", p.Name, p.TargetPort.String())
		}
	}
	if svcPort == nil {
		t.Fatal("the Service has no port to the container's http port")
	}

	// The ingress: PUBLIC_URL's host, the Service's port, timeouts above the pings.
	checkIngress(t, m, cfg, svcPort)

	// The migrate Job runs `shopstream migrate` with the same environment.
	if len(m.migrate.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("the migrate Job needs one container")
	}
	jc := m.migrate.Spec.Template.Spec.Containers[0]
	if !slices.Equal(jc.Args, []string{"migrate"}) || jc.Image != c.Image {
		t.Errorf("the migrate Job runs %s %v, want the Deployment's image %s with [migrate]", jc.Image, jc.Args, c.Image)
	}
	m.env(t, "migrate job", jc)

	// kustomization.yaml applies every manifest but the Job, and sets the image.
	var want []string
	entries, err := os.ReadDir(kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "kustomization.yaml" && n != "migrate-job.yaml" && strings.HasSuffix(n, ".yaml") {
			want = append(want, n)
		}
	}
	got := slices.Sorted(slices.Values(m.kust.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want %v", got, want)
	}
	if len(m.kust.Images) != 1 || m.kust.Images[0].Name != c.Image[:strings.IndexByte(c.Image+":", ':')] {
		t.Errorf("kustomization.yaml images %+v, want one entry for %s", m.kust.Images, c.Image)
	}
}

func checkIngress(t *testing.T, m manifests, cfg config.Config, svcPort *corev1.ServicePort) {
	t.Helper()
	ing := m.ingress
	if len(cfg.PublicURLs) == 0 {
		t.Fatal("PUBLIC_URL is not set: behind an ingress it should be")
	}
	pub, err := url.Parse(cfg.PublicURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != pub.Hostname() {
		t.Fatalf("ingress rules %+v: want one, for PUBLIC_URL's host %s", ing.Spec.Rules, pub.Hostname())
	}
	if pub.Scheme == "https" && (len(ing.Spec.TLS) == 0 || !slices.Contains(ing.Spec.TLS[0].Hosts, pub.Hostname())) {
		t.Errorf("PUBLIC_URL is https and the ingress has no TLS for %s", pub.Hostname())
	}
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		b := p.Backend.Service
		if b == nil || b.Name != m.svc.Name || (b.Port.Name != svcPort.Name && b.Port.Number != svcPort.Port) {
			t.Errorf("ingress path %s goes to %+v, want Service %s port %s", p.Path, b, m.svc.Name, svcPort.Name)
		}
	}
	for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/"+a])
		if err != nil {
			t.Errorf("ingress %s: %v (ingress-nginx's default, 60 s, is too close to the ping interval)", a, err)
			continue
		}
		if time.Duration(v)*time.Second < 2*cfg.PingInterval {
			t.Errorf("ingress %s %d s: want at least twice WS_PING_INTERVAL (%v), or idle sockets are cut", a, v, cfg.PingInterval)
		}
	}
}

// TestKubernetesPod runs what the manifests run: the migrate Job's command on
// an empty database, then the Deployment's server with the ConfigMap's and the
// Secret's environment (the database and the two listening addresses replaced
// by the test's). It requests the probes as the kubelet does (Host: the pod's
// address) and the metrics the scrape annotations point at, opens a socket as
// a browser behind the ingress would (PUBLIC_URL's host and origin), and stops
// the server as SIGTERM after preStop does: the socket gets 1001, and the stop
// ends within the grace period left after preStop.
func TestKubernetesPod(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	c := m.deploy.Spec.Template.Spec.Containers[0]
	env := m.env(t, "deployment", c)
	db := pgtest.NewEmptyDB(t)
	env["DATABASE_URL"], env["LISTEN_DATABASE_URL"] = db, db
	env["LISTEN_ADDR"], env["METRICS_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	// The test reads the listening addresses from serve's plain stdout lines;
	// with the ConfigMap's LOG_FORMAT=json they are log records instead.
	env["LOG_FORMAT"] = "text"

	var out, errOut bytes.Buffer
	jobEnv := m.env(t, "migrate job", m.migrate.Spec.Template.Spec.Containers[0])
	jobEnv["DATABASE_URL"], jobEnv["LISTEN_DATABASE_URL"] = db, db
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, m.migrate.Spec.Template.Spec.Containers[0].Args, func(k string) string { return jobEnv[k] }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("the migrate Job's command: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "schema: migrated") {
		t.Errorf("migrate printed %q", out.String())
	}

	s := startServer(t, db, env)
	if s.MetricsURL == "" {
		t.Fatal("METRICS_ADDR from the ConfigMap did not start a metrics server")
	}
	probe := func(base, path, host string) int {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	httpPort, _ := containerPort(c, "http")
	podHost := net.JoinHostPort("10.42.0.7", strconv.Itoa(int(httpPort)))
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if code := probe(s.URL, p.HTTPGet.Path, podHost); code != http.StatusOK {
			t.Errorf("GET %s with Host %s: %d, want 200", p.HTTPGet.Path, podHost, code)
		}
	}
	path := m.deploy.Spec.Template.Annotations["prometheus.io/path"]
	if code := probe(s.MetricsURL, path, podHost); code != http.StatusOK {
		t.Errorf("GET %s on METRICS_ADDR: %d, want 200", path, code)
	}
	// PUBLIC_URL took effect: its host is served, another is refused.
	pub, _ := url.Parse(m.cm.Data["PUBLIC_URL"])
	if code := probe(s.URL, "/api/auth/me", pub.Host); code != http.StatusUnauthorized {
		t.Errorf("GET /api/auth/me with Host %s: %d, want 401", pub.Host, code)
	}
	if code := probe(s.URL, "/api/auth/me", podHost); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/auth/me with Host %s: %d, want 421", podHost, code)
	}

	ws := publicSocket(t, s, pub)
	ws.subscribe("order_changes")
	grace := time.Duration(*m.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second -
		time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second
	stopped := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		s.Stop(t)
		stopped <- time.Since(start)
	}()
	if code, reason := ws.expectClose(); code != websocket.StatusGoingAway {
		t.Errorf("the socket closed with %d %q at shutdown, want 1001", code, reason)
	}
	if took := waitfor.Receive(t, "Stop", stopped); took >= grace {
		t.Errorf("the server took %v to stop; the grace left after preStop is %v", took, grace)
	}
}

// publicSocket logs in and opens a socket as a browser on PUBLIC_URL does
// through the ingress: Host and Origin are the public URL's, and the Secure
// cookie is sent although the hop to the pod is plain HTTP.
func publicSocket(t *testing.T, s *testServer, pub *url.URL) *wsClient {
	t.Helper()
	createAdmin(t, s.DBURL, "ops@example.com", "admin")
	body := strings.NewReader(`{"email":"ops@example.com","password":"` + testPassword + `"}`)
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/auth/login", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = pub.Host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", pub.Scheme+"://"+pub.Host)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
		t.Fatalf("login through the public host: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	h := http.Header{"Origin": {pub.Scheme + "://" + pub.Host}}
	for _, ck := range resp.Cookies() {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure in production", ck.Name)
		}
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	w := dialRaw(t, s, http.DefaultClient, &websocket.DialOptions{Host: pub.Host, HTTPHeader: h})
	if msg := w.read(); msg["type"] != "connected" {
		t.Fatalf("first message: %v", msg)
	}
	return w
}
