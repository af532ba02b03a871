// Package kubernetes holds the manifests that run a weir job on Kubernetes
// (see README.md) and the test that checks them.
//
// It is a module of its own so that the Kubernetes API types, which the test
// decodes the manifests into, stay out of weir's dependencies. No API server
// runs here, so the test stands in for `kubectl apply --dry-run=server`:
// every document must decode strictly (an unknown or misspelt field fails)
// into the typed object of its kind, and the pieces must fit together:
// selectors and labels, probe and scrape ports, the variables the
// arguments use, and every flag of the job, which the test asks the built
// binary for.
package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests are the files kustomization.yaml lists.
var manifests = []string{"statefulset.yaml", "service.yaml", "pdb.yaml"}

// objects holds the decoded manifests.
type objects struct {
	sts *appsv1.StatefulSet
	svc *corev1.Service
	pdb *policyv1.PodDisruptionBudget
}

func load(t *testing.T) objects {
	t.Helper()
	var o objects
	for _, name := range manifests {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			if err := o.decode(doc); err != nil {
				t.Fatalf("%s, document %d: %v", name, i+1, err)
			}
		}
	}
	if o.sts == nil || o.svc == nil || o.pdb == nil {
		t.Fatalf("want a StatefulSet, a Service and a PodDisruptionBudget, got %+v", o)
	}
	return o
}

// decode decodes doc strictly into the object of its kind.
func (o *objects) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var dst any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 StatefulSet":
		o.sts = &appsv1.StatefulSet{}
		dst = o.sts
	case "v1 Service":
		o.svc = &corev1.Service{}
		dst = o.svc
	case "policy/v1 PodDisruptionBudget":
		o.pdb = &policyv1.PodDisruptionBudget{}
		dst = o.pdb
	default:
		return fmt.Errorf("unexpected kind %q of %q", tm.Kind, tm.APIVersion)
	}
	return yaml.UnmarshalStrict(doc, dst)
}

func TestKustomizationListsTheManifests(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Resources, manifests) {
		t.Errorf("kustomization.yaml lists %v, want %v", k.Resources, manifests)
	}
}

func TestSelectorsMatchThePods(t *testing.T) {
	o := load(t)
	pods := labels.Set(o.sts.Spec.Template.Labels)
	for name, sel := range map[string]*metav1.LabelSelector{"StatefulSet": o.sts.Spec.Selector, "PodDisruptionBudget": o.pdb.Spec.Selector} {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("%s selector: %v", name, err)
		}
		if s.Empty() || !s.Matches(pods) {
			t.Errorf("%s selector %v does not select the pods (labels %v)", name, s, pods)
		}
	}
	if s := labels.SelectorFromSet(o.svc.Spec.Selector); len(o.svc.Spec.Selector) == 0 || !s.Matches(pods) {
		t.Errorf("Service selector %v does not select the pods (labels %v)", o.svc.Spec.Selector, pods)
	}
	if o.sts.Spec.ServiceName != o.svc.Name || o.svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet serviceName %q: want the headless Service %q", o.sts.Spec.ServiceName, o.svc.Name)
	}
}

func TestPortsAndProbes(t *testing.T) {
	o := load(t)
	c := job(t, o)
	metrics := port(t, c, "metrics")
	addr := flagValue(c.Args, "metrics-addr")
	if !strings.HasSuffix(addr, ":"+strconv.Itoa(int(metrics))) {
		t.Errorf("--metrics-addr %q does not serve the metrics port %d", addr, metrics)
	}
	if got := o.sts.Spec.Template.Annotations["prometheus.io/port"]; got != strconv.Itoa(int(metrics)) {
		t.Errorf("prometheus.io/port %q, want %d", got, metrics)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe %+v: want GET %s on the metrics port", name, p, want)
		}
	}
	if len(o.svc.Spec.Ports) != 1 || o.svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service ports %+v: want the metrics port", o.svc.Spec.Ports)
	}
}

// TestArgumentsAreFlagsOfTheJob builds the job and checks every argument
// against its -help, and every $(VAR) against the container's environment.
func TestArgumentsAreFlagsOfTheJob(t *testing.T) {
	o := load(t)
	c := job(t, o)
	for _, need := range []string{"group", "instance-id", "checkpoint-dir", "local-dir"} {
		if flagValue(c.Args, need) == "" {
			t.Errorf("the job has no --%s", need)
		}
	}
	if !strings.HasPrefix(flagValue(c.Args, "checkpoint-dir"), "s3://") {
		t.Errorf("--checkpoint-dir %q: every member must reach it; want s3://", flagValue(c.Args, "checkpoint-dir"))
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, arg := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(arg, -1) {
			if !env[m[1]] {
				t.Errorf("argument %q uses $(%s), which the container does not set", arg, m[1])
			}
		}
	}
	help := jobHelp(t)
	for _, arg := range c.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !strings.HasPrefix(arg, "--") || !strings.Contains(help, "\n  -"+name+" ") && !strings.Contains(help, "\n  -"+name+"\n") {
			t.Errorf("argument %q is not a flag of examples/orders", arg)
		}
	}
}

// jobHelp builds examples/orders and returns its -help.
func jobHelp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "orders")
	build := exec.Command("go", "build", "-o", bin, "./examples/orders")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/orders: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "-help").CombinedOutput() // exits 0 or 2 by version
	if !strings.Contains(string(out), "-checkpoint-dir") {
		t.Fatalf("orders -help lists no flags:\n%s", out)
	}
	return "\n" + string(out)
}

func job(t *testing.T, o objects) corev1.Container {
	t.Helper()
	cs := o.sts.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("want one container, got %d", len(cs))
	}
	return cs[0]
}

func port(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port %q", name)
	return 0
}

// flagValue returns the value of --name=value in args, or "".
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}
