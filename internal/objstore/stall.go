package objstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// StallTimeoutEnv names the environment variable that sets how long an S3
// request may go without a byte sent or received before it fails (and the
// SDK retries it, AWS_MAX_ATTEMPTS in all): a Go duration, default
// defaultStallTimeout.
const StallTimeoutEnv = "WEIR_S3_REQUEST_TIMEOUT"

// defaultStallTimeout is the default of StallTimeoutEnv. It bounds silence,
// not a transfer: an upload of a large sstable over a slow link moves bytes
// all along and is never cut short. AWS SDKs use 50 s socket timeouts; half
// a minute of silence from an S3 server is already far outside its normal
// latency, and with the SDK's 3 attempts a hung endpoint fails a checkpoint
// or a restore in about 2 minutes instead of never.
const defaultStallTimeout = 30 * time.Second

// errStalled is the error of a read or write on a connection that moved no
// byte for the stall timeout. It is a timeout, so the SDK retries it.
type errStalled struct{ d time.Duration }

func (e *errStalled) Error() string {
	return fmt.Sprintf("nothing sent or received for %v (%s)", e.d, StallTimeoutEnv)
}
func (e *errStalled) Timeout() bool   { return true }
func (e *errStalled) Temporary() bool { return true }

// stallTimeout reads StallTimeoutEnv.
func stallTimeout() (time.Duration, error) {
	v := os.Getenv(StallTimeoutEnv)
	if v == "" {
		return defaultStallTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: %s=%q: want a positive duration such as 30s", ErrBadLocation, StallTimeoutEnv, v)
	}
	return d, nil
}

// withStallTimeout returns the SDK's HTTP client with connections that fail
// after d without progress.
//
// NB: the SDK's own read timeout (awshttp.BuildableClient.WithReadTimeout,
// off for S3) counts from each read alone, and the transport reads the
// response while it still writes the request: a large upload would trip it.
// Here any byte moved in either direction extends both deadlines.
func withStallTimeout(c aws.HTTPClient, d time.Duration) aws.HTTPClient {
	b, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c // the caller's own client: its timeouts are its own
	}
	return b.WithTransportOptions(func(tr *http.Transport) {
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: conn, d: d}, nil
		}
	})
}

// stallConn is a connection whose reads and writes fail with errStalled
// once it has moved no byte for d.
type stallConn struct {
	net.Conn
	d time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.d))
	n, err := c.Conn.Read(p)
	return n, c.stalled(err)
}

func (c *stallConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.d))
	n, err := c.Conn.Write(p)
	return n, c.stalled(err)
}

func (c *stallConn) stalled(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &errStalled{c.d}
	}
	return err
}
