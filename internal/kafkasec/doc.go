// Package kafkasec configures how weir's Kafka clients authenticate and
// encrypt: TLS (system roots or a CA file, an optional client certificate, a
// server name) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
//
// Users see it as the Security type of package connectors/kafka (with
// aliases of TLS, SASL, Mechanism, Password and the error types, and
// RegisterSecurityFlags), which converts to Config. It lives here, under
// internal/, because the transactional producer (internal/kafkatxn), the
// sample-order producer and the dev broker use it too, and the connector
// imports kafkatxn: the helpers below are for weir's own Kafka clients, not
// for users. Config.Transport and Config.KgoOpts turn a Config into the
// settings of the two client libraries (kafka-go's sasl/plain and
// sasl/scram, franz-go's pkg/sasl).
//
// RegisterFlags binds the standard flags (--kafka-tls, --kafka-tls-ca,
// --kafka-tls-cert, --kafka-tls-key, --kafka-tls-server-name,
// --kafka-sasl-mechanism, --kafka-sasl-user, --kafka-sasl-password-file) to a
// flag set. The password is never a flag value, so it never shows in a
// process list: it comes from the file or from the environment variable
// WEIR_KAFKA_SASL_PASSWORD. Its type, Password, prints as [REDACTED] through
// fmt, slog and JSON, so a logged or served Config does not leak it.
//
// Config.Authenticate connects once and authenticates, and CheckTopics also
// asks the broker what the principal may do on some topics: connectors call
// them when they open, so that a wrong password fails within seconds with
// an error that says so (the client libraries see only a closed connection,
// which they retry), and a missing ACL fails before any record is processed.
//
// A broker's refusal is permanent: no restart or retry makes a wrong password
// right or grants a missing ACL. Errors of authentication (a rejected
// password, a failed TLS handshake) wrap ErrAuthentication and errors of
// authorization wrap ErrAuthorization; both wrap runtime.ErrUnrecoverable, so
// a job fails at once instead of restarting. An AuthorizationError names
// the resource and the operation the job's principal lacks.
package kafkasec
