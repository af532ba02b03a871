package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/internal/testcert"
	"github.com/weirstream/weir/weirtest/orders"
)

// execEnv makes the test binary run the job's main instead of the tests,
// so that a test sees the job's exit code and everything it logs.
const execEnv = "WEIR_ORDERS_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The passwords of the secured broker's users; no log line, error or
// status page of the job may show them.
const (
	appPassword    = "app-Pa55word-7f3e"
	readerPassword = "reader-Pa55word-91c2"
	adminPassword  = "admin-Pa55word-04d8"
)

// leastPrivilege is the README's ACL list ("Kafka security") for the
// orders job with its default topics and transactional-id prefix.
var leastPrivilege = []string{
	"app:Read:Topic:orders",
	"app:Write:Topic:customer-totals",
	"app:Write:TransactionalId:weir-orders*",
}

// secureBroker is a broker that takes only TLS connections and SCRAM-SHA-256
// users: app (the job, with acls), reader (reads the output) and admin (a
// superuser that writes the input).
type secureBroker struct {
	*devbroker.Broker
	cert testcert.Files
}

func startSecureBroker(t *testing.T, acls []string) *secureBroker {
	t.Helper()
	cert := testcert.Write(t, t.TempDir())
	cfg := devbroker.Config{Addr: "127.0.0.1:0", Partitions: 1, Logger: quiet,
		TLSCertFile: cert.Cert, TLSKeyFile: cert.Key,
		Users: []devbroker.User{
			{Mechanism: kafka.ScramSHA256, Name: "app", Password: appPassword},
			{Mechanism: kafka.ScramSHA256, Name: "reader", Password: readerPassword},
			{Mechanism: kafka.ScramSHA256, Name: "admin", Password: adminPassword, Superuser: true},
		},
	}
	for _, rule := range append(acls, "reader:Read:Topic:customer-totals") {
		a, err := devbroker.ParseACL(rule)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ACLs = append(cfg.ACLs, a)
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, topic := range []string{"orders", "customer-totals"} {
		if err := b.CreateTopic(topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	return &secureBroker{Broker: b, cert: cert}
}

func (b *secureBroker) security(user, password string) kafka.Security {
	return kafka.Security{
		TLS:  kafka.TLS{CAFile: b.cert.Cert},
		SASL: kafka.SASL{Mechanism: kafka.ScramSHA256, User: user, Password: kafka.Password(password)},
	}
}

// job is the orders job in a child process, secured as app.
type job struct {
	cmd       *exec.Cmd
	stdout    bytes.Buffer
	stderr    bytes.Buffer  // read after done
	statusURL chan string   // the status page's URL, once logged
	done      chan struct{} // closed when the process has exited
	started   time.Time
}

// startJob starts the job with password in a --kafka-sasl-password-file.
func startJob(t *testing.T, b *secureBroker, password string, extra ...string) *job {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--brokers", b.Addr(), "--checkpoint-dir", filepath.Join(dir, "checkpoints"),
		"--checkpoint-interval", "50ms", "--log-level", "debug", "--metrics-addr", "127.0.0.1:0",
		"--kafka-tls-ca", b.cert.Cert, "--kafka-sasl-mechanism", "scram-sha-256",
		"--kafka-sasl-user", "app", "--kafka-sasl-password-file", pwFile}, extra...)
	j := &job{cmd: exec.Command(os.Args[0], args...), statusURL: make(chan string, 1), done: make(chan struct{})}
	j.cmd.Env = append(os.Environ(), execEnv+"=1")
	j.cmd.Stdout = &j.stdout
	stderr, err := j.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	j.started = time.Now()
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := regexp.MustCompile(`url=(http://\S+)`)
	go func() {
		defer close(j.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			j.stderr.WriteString(sc.Text() + "\n")
			if m := url.FindStringSubmatch(sc.Text()); m != nil {
				j.statusURL <- m[1]
			}
		}
		j.cmd.Wait()
	}()
	t.Cleanup(func() {
		j.cmd.Process.Kill()
		<-j.done
	})
	return j
}

// wait returns the exit code and the output, failing the test if the job
// runs longer than limit.
func (j *job) wait(t *testing.T, limit time.Duration) (code int, output string) {
	t.Helper()
	select {
	case <-j.done:
	case <-time.After(limit):
		j.cmd.Process.Kill()
		<-j.done
		t.Fatalf("job still running after %v\nstderr:\n%s", limit, &j.stderr)
	}
	return j.cmd.ProcessState.ExitCode(), j.stdout.String() + j.stderr.String()
}

// noPasswords fails the test if text shows a password.
func noPasswords(t *testing.T, what, text string) {
	t.Helper()
	for _, pw := range []string{appPassword, readerPassword, adminPassword, "wrong-" + appPassword} {
		if strings.Contains(text, pw) {
			t.Errorf("%s shows a password:\n%s", what, text)
		}
	}
}

// produceSample writes sample orders as admin and returns the output the
// job must commit: one total per distinct order, in input order (the topics
// have one partition, the job a parallelism of 1).
func produceSample(t *testing.T, b *secureBroker) []string {
	t.Helper()
	sample, err := orders.Generate(11, 200, 20, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	if err := orders.Produce(t.Context(), []string{b.Addr()}, b.security("admin", adminPassword), "orders", sample, 0); err != nil {
		t.Fatal(err)
	}
	var want []string
	seen, totals := map[string]bool{}, map[string]int64{}
	for _, o := range sample {
		if seen[o.OrderID] {
			continue
		}
		seen[o.OrderID] = true
		totals[o.Customer] += o.AmountCents
		v, _ := json.Marshal(CustomerTotal{Customer: o.Customer, OrderID: o.OrderID, TotalCents: totals[o.Customer]})
		want = append(want, string(v))
	}
	return want
}

// kcatRead returns the values of topic as kcat (librdkafka) reads them,
// read_committed, over TLS with SCRAM-SHA-256 as user.
func kcatRead(t *testing.T, kcat string, b *secureBroker, topic, user, password string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", b.Addr(), "-t", topic, "-e", "-q", "-u", "-f", "%s\n",
		"-X", "isolation.level=read_committed",
		"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-256",
		"-X", "sasl.username="+user, "-X", "sasl.password="+password,
		"-X", "ssl.ca.location="+b.cert.Cert)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// statusOf returns the body of /api/status and the records the sink took.
func statusOf(t *testing.T, url string) (string, uint64) {
	t.Helper()
	resp, err := http.Get(url + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Operators []struct {
			Name      string `json:"name"`
			RecordsIn uint64 `json:"records_in"`
		} `json:"operators"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/api/status: %v\n%s", err, body)
	}
	for _, op := range st.Operators {
		if op.Name == "customer-totals" {
			return string(body), op.RecordsIn
		}
	}
	t.Fatalf("/api/status has no sink:\n%s", body)
	return "", 0
}

// TestSecuredLeastPrivilege runs the job against a broker that requires TLS
// and SCRAM-SHA-256 and grants the job's user exactly the README's ACLs:
// kcat, reading read_committed with the same security, sees exactly the
// expected output, and no password shows in the job's logs or status.
func TestSecuredLeastPrivilege(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not on PATH (apt-get install -y kcat); skipping the secured end-to-end test")
	}
	b := startSecureBroker(t, leastPrivilege)
	want := produceSample(t, b)
	j := startJob(t, b, appPassword) // unbounded: stopped by SIGTERM below
	var url string
	select {
	case url = <-j.statusURL:
	case <-j.done:
		t.Fatalf("job exited before serving its status\n%s\n%s", &j.stdout, &j.stderr)
	}
	// Wait until the sink has taken every total; SIGTERM then commits
	// them with a final checkpoint.
	deadline := time.Now().Add(time.Minute)
	for {
		body, n := statusOf(t, url)
		noPasswords(t, "/api/status", body)
		if n == uint64(len(want)) {
			break
		}
		if n > uint64(len(want)) || time.Now().After(deadline) {
			t.Fatalf("the sink took %d records, want %d", n, len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	j.cmd.Process.Signal(syscall.SIGTERM)
	code, out := j.wait(t, time.Minute)
	if code != 0 {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
	noPasswords(t, "the job's output", out)
	got := kcatRead(t, kcat, b, "customer-totals", "reader", readerPassword)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kcat read %d records, want %d; first difference:\n%s", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("record %d: got %q, want %q", i, g, w)
		}
	}
	return "none"
}

// TestSecuredMissingACL removes each ACL of the README's list in turn: the
// job exits non-zero at start, without restarting, naming the operation and
// the resource it lacks.
func TestSecuredMissingACL(t *testing.T) {
	wants := map[string]string{
		"app:Read:Topic:orders":                  `not authorized to Read Topic "orders"`,
		"app:Write:Topic:customer-totals":        `not authorized to Write Topic "customer-totals"`,
		"app:Write:TransactionalId:weir-orders*": `not authorized to Write TransactionalId "weir-orders-0-0"`,
	}
	for i, removed := range leastPrivilege {
		t.Run(removed, func(t *testing.T) {
			acls := append(append([]string{}, leastPrivilege[:i]...), leastPrivilege[i+1:]...)
			b := startSecureBroker(t, acls)
			produceSample(t, b)
			code, out := startJob(t, b, appPassword, "--stop-at-end").wait(t, time.Minute)
			if code == 0 {
				t.Fatalf("the job succeeded without %s:\n%s", removed, out)
			}
			if !strings.Contains(out, wants[removed]) {
				t.Errorf("without %s, the output does not say %q:\n%s", removed, wants[removed], out)
			}
			if strings.Contains(out, "restarting") {
				t.Errorf("the job restarted after an authorization failure:\n%s", out)
			}
			noPasswords(t, "the job's output", out)
		})
	}
}

// TestSecuredWrongPassword checks that a wrong password fails the job at
// once with an authentication error, without retries or restarts.
func TestSecuredWrongPassword(t *testing.T) {
	b := startSecureBroker(t, leastPrivilege)
	j := startJob(t, b, "wrong-"+appPassword, "--stop-at-end")
	// NB: the limit only turns a hang into a failure; the proof of no
	// retry is the absence of retry and restart logs.
	code, out := j.wait(t, time.Minute)
	t.Logf("the job failed after %v", time.Since(j.started))
	if code == 0 {
		t.Fatalf("the job succeeded with a wrong password:\n%s", out)
	}
	for _, want := range []string{"authentication with", `SASL scram-sha-256 as user "app": the broker rejected the credentials`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, retry := range []string{"restarting", "retrying"} {
		if strings.Contains(out, retry) {
			t.Errorf("the job kept %s after an authentication failure:\n%s", retry, out)
		}
	}
	noPasswords(t, "the job's output", out)
}
