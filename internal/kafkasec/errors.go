package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weirstream/weir/runtime"
)

var (
	// ErrAuthentication is wrapped by the errors of a failed
	// authentication: a rejected user or password, an unsupported SASL
	// mechanism, a failed TLS handshake.
	ErrAuthentication = errors.New("kafka: authentication failed")
	// ErrAuthorization is wrapped by the errors of a request the broker
	// refused for lack of an ACL (see AuthorizationError).
	ErrAuthorization = errors.New("kafka: not authorized")
)

// AuthenticationError is a failed authentication. It wraps
// ErrAuthentication and runtime.ErrUnrecoverable.
type AuthenticationError struct {
	Brokers []string
	Err     error
}

func (e *AuthenticationError) Error() string {
	return fmt.Sprintf("kafka: authentication with %v failed (check the SASL mechanism, user and password, and the TLS settings; a restart does not help): %v",
		e.Brokers, e.Err)
}

// Unwrap returns the sentinels and the client library's error.
func (e *AuthenticationError) Unwrap() []error {
	return []error{ErrAuthentication, runtime.ErrUnrecoverable, e.Err}
}

// Resource types and operations of Kafka ACLs, as kafka-acls.sh spells
// them.
const (
	Topic           = "Topic"
	TransactionalID = "TransactionalId"
	Cluster         = "Cluster"

	Read            = "Read"
	Write           = "Write"
	Describe        = "Describe"
	Create          = "Create"
	IdempotentWrite = "IdempotentWrite"
)

// AuthorizationError is a request refused for lack of an ACL: the job's
// principal may not do Operation on the resource (ResourceType, Name). It
// wraps ErrAuthorization and runtime.ErrUnrecoverable.
type AuthorizationError struct {
	ResourceType string // Topic, TransactionalId or Cluster
	Name         string
	Operation    string // Read, Write, Describe, IdempotentWrite, …
	Err          error  // the broker's error
}

func (e *AuthorizationError) Error() string {
	return fmt.Sprintf("kafka: not authorized to %s %s %q: grant the job's principal %s on %s %s (see the README, \"Kafka security\"): %v",
		e.Operation, e.ResourceType, e.Name, e.Operation, e.ResourceType, e.Name, e.Err)
}

// Unwrap returns the sentinels and the broker's error.
func (e *AuthorizationError) Unwrap() []error {
	return []error{ErrAuthorization, runtime.ErrUnrecoverable, e.Err}
}

// errorCode returns the Kafka error code in err's chain, from kafka-go or
// franz-go, or 0.
func errorCode(err error) int16 {
	var we kafkago.WriteErrors // per message, without Unwrap
	if errors.As(err, &we) {
		for _, e := range we {
			if c := errorCode(e); c != 0 {
				return c
			}
		}
	}
	var kg kafkago.Error
	if errors.As(err, &kg) {
		return int16(kg)
	}
	var fe *kerr.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return 0
}

// IsAuthorization reports whether err carries one of Kafka's
// *_AUTHORIZATION_FAILED codes.
func IsAuthorization(err error) bool {
	switch errorCode(err) {
	case kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code,
		kerr.ClusterAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code:
		return true
	}
	return false
}

// IsAuthentication reports whether err is a failed authentication: a SASL
// error code, or a TLS certificate or handshake failure.
//
// NB: a connection the broker closes during the SASL exchange is one too,
// but only Authenticate can tell it from a broker going down (franz-go's
// ErrFirstReadEOF covers both), so it is not one here.
func IsAuthentication(err error) bool {
	if err == nil {
		return false
	}
	switch errorCode(err) {
	case kerr.SaslAuthenticationFailed.Code, kerr.UnsupportedSaslMechanism.Code, kerr.IllegalSaslState.Code:
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var header tls.RecordHeaderError
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &header)
}

// Classify wraps an authentication failure in an *AuthenticationError
// naming the brokers, and returns any other error unchanged.
func Classify(err error, brokers []string) error {
	var ae *AuthenticationError
	if !IsAuthentication(err) || errors.As(err, &ae) {
		return err
	}
	return &AuthenticationError{Brokers: brokers, Err: err}
}

// Authorization wraps an authorization failure of operation on the
// resource in an *AuthorizationError, and classifies any other error as
// Classify does.
func Authorization(err error, brokers []string, resourceType, name, operation string) error {
	var ae *AuthorizationError
	if !IsAuthorization(err) || errors.As(err, &ae) {
		return Classify(err, brokers)
	}
	return &AuthorizationError{ResourceType: resourceType, Name: name, Operation: operation, Err: err}
}

// aclBit is the bit of an operation in Kafka's authorized-operations
// bitfields (kmsg.ACLOperation values).
var aclBit = map[string]uint{Read: 3, Write: 4, Create: 5, Describe: 8, IdempotentWrite: 12}

// CheckTopicOperations checks the authorized operations a Metadata response
// (v8+, asked with IncludeTopicAuthorizedOperations) reports for a topic,
// and returns an *AuthorizationError for the first of ops missing. A
// bitfield without Describe is not an answer (an older broker, or the
// field not asked for: the topic was described, so Describe is allowed):
// nothing is checked then, and the requests themselves report a missing
// ACL later.
func CheckTopicOperations(topic string, authorized int32, ops ...string) error {
	if authorized&(1<<aclBit[Describe]) == 0 {
		return nil
	}
	for _, op := range ops {
		bit, ok := aclBit[op]
		if !ok {
			panic("kafkasec: unknown operation " + op)
		}
		if authorized&(1<<bit) == 0 {
			return &AuthorizationError{ResourceType: Topic, Name: topic, Operation: op,
				Err: fmt.Errorf("the broker reports the operation missing from the topic's authorized operations: %w", kerr.TopicAuthorizationFailed)}
		}
	}
	return nil
}
