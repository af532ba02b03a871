package kafkasec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	metaAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
	"github.com/segmentio/kafka-go/sasl"
)

// Authenticate connects to the first broker of brokers that answers and
// authenticates as c says, within timeout, then hangs up. It returns an
// error only when a broker refuses: a rejected password or a failed TLS
// verification, wrapping ErrAuthentication. A broker out of reach is left
// to the caller's client, which retries it. It does nothing for a zero
// Config.
//
// Connectors call it when they open, before their clients connect: a
// broker that rejects a password closes the connection, which the client
// libraries report as a lost connection and retry (kafka-go maps only a
// plaintext EOF to SASL_AUTHENTICATION_FAILED, and not one under TLS), so
// a wrong password would look like an unreachable cluster for their whole
// retry timeout. Here a connection closed during the SASL exchange is what
// it is, a rejection.
func (c Config) Authenticate(ctx context.Context, brokers []string, timeout time.Duration) error {
	if c.IsZero() {
		return nil
	}
	return c.probe(ctx, brokers, timeout, func(*protocol.Conn) error { return nil })
}

// CheckTopics authenticates as Authenticate does and, on the same
// connection, asks the broker which operations the principal may do on
// topics (Metadata v8+, without creating them). It returns an
// *AuthorizationError for the first topic that lacks op (see
// CheckTopicOperations). Topics that do not exist, brokers too old to say
// and brokers out of reach are left to the caller's requests.
//
// The sink uses it because kafka-go's Transport answers metadata requests
// from its cache, which does not hold the authorized operations.
func (c Config) CheckTopics(ctx context.Context, brokers []string, timeout time.Duration, op string, topics ...string) error {
	return c.probe(ctx, brokers, timeout, func(pc *protocol.Conn) error {
		r, err := pc.RoundTrip(&metaAPI.Request{TopicNames: topics, IncludeTopicAuthorizedOperations: true})
		if err != nil {
			return nil // the caller's own metadata request will say
		}
		for _, t := range r.(*metaAPI.Response).Topics {
			switch code := kafkago.Error(t.ErrorCode); {
			case code == kafkago.TopicAuthorizationFailed:
				return Authorization(code, brokers, Topic, t.Name, op)
			case t.ErrorCode == 0:
				if err := CheckTopicOperations(t.Name, t.TopicAuthorizedOperations, op); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// probe connects and authenticates to the first broker that answers and
// runs check on the connection. Only refusals are errors.
func (c Config) probe(ctx context.Context, brokers []string, timeout time.Duration, check func(*protocol.Conn) error) error {
	if err := c.Validate(); err != nil {
		return err
	}
	tc, err := c.TLSConfig()
	if err != nil {
		return err
	}
	mech, err := c.kafkaGoMechanism()
	if err != nil {
		return err
	}
	for _, addr := range brokers {
		pc, err := connect(ctx, addr, tc, mech, c.SASL, timeout)
		if err != nil {
			if IsAuthentication(err) {
				return Classify(fmt.Errorf("broker %s: %w", addr, err), brokers)
			}
			continue
		}
		defer pc.Close()
		return check(pc)
	}
	return nil
}

// connect opens a connection to addr and runs the TLS handshake and the
// SASL exchange on it, as kafka-go's Transport does, all within timeout.
func connect(ctx context.Context, addr string, tc *tls.Config, mech sasl.Mechanism, s SASL, timeout time.Duration) (_ *protocol.Conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		if tc.ServerName == "" {
			tc = tc.Clone()
			tc.ServerName = host
		}
		tlsConn := tls.Client(conn, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tlsConn
	}
	pc := protocol.NewConn(conn, "weir")
	r, err := pc.RoundTrip(new(apiversions.Request))
	if err != nil {
		return nil, fmt.Errorf("api versions: %w", err)
	}
	res := r.(*apiversions.Response)
	if res.ErrorCode != 0 {
		return nil, fmt.Errorf("api versions: %w", kafkago.Error(res.ErrorCode))
	}
	versions := make(map[protocol.ApiKey]int16, len(res.ApiKeys))
	for _, k := range res.ApiKeys {
		key := protocol.ApiKey(k.ApiKey)
		versions[key] = key.SelectVersion(k.MinVersion, k.MaxVersion)
	}
	pc.SetVersions(versions)
	if mech != nil {
		if err := saslExchange(ctx, pc, mech, s, host, port); err != nil {
			return nil, err
		}
	}
	return pc, nil
}

// saslExchange runs the SASL handshake and authentication on pc.
func saslExchange(ctx context.Context, pc *protocol.Conn, mech sasl.Mechanism, s SASL, host, port string) error {
	rejected := func(err error) error {
		return fmt.Errorf("SASL %s as user %q: the broker rejected the credentials (wrong user or password?): %w: %w",
			s.Mechanism, s.User, kafkago.SASLAuthenticationFailed, err)
	}
	hr, err := pc.RoundTrip(&saslhandshake.Request{Mechanism: mech.Name()})
	if err != nil {
		return fmt.Errorf("SASL handshake: %w", err)
	}
	if code := hr.(*saslhandshake.Response).ErrorCode; code != 0 {
		return fmt.Errorf("SASL handshake for %s (the broker offers %v): %w", s.Mechanism,
			hr.(*saslhandshake.Response).Mechanisms, kafkago.Error(code))
	}
	portNum, _ := strconv.Atoi(port)
	ctx = sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: portNum})
	sess, state, err := mech.Start(ctx)
	if err != nil {
		return fmt.Errorf("SASL %s: %w", s.Mechanism, err)
	}
	for done := false; !done; {
		ar, err := pc.RoundTrip(&saslauthenticate.Request{AuthBytes: state})
		if err != nil {
			if closed(err) {
				// NB: brokers answer a failed exchange by closing the
				// connection (kfake always; Kafka after an error).
				return rejected(err)
			}
			return fmt.Errorf("SASL authenticate: %w", err)
		}
		res := ar.(*saslauthenticate.Response)
		if res.ErrorCode != 0 {
			msg := ""
			if res.ErrorMessage != "" {
				msg = ": " + res.ErrorMessage
			}
			return rejected(fmt.Errorf("%w%s", kafkago.Error(res.ErrorCode), msg))
		}
		if done, state, err = sess.Next(ctx, res.AuthBytes); err != nil {
			return rejected(err) // e.g. SCRAM: the server's signature does not match
		}
	}
	return nil
}

// closed reports whether err is the peer closing the connection.
func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
