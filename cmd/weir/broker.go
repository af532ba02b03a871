package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker"
)

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runBroker(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "broker", "broker [--addr 127.0.0.1:9092] [--partitions 3] [--data-dir DIR] [--transactional-id-expiration 168h]\n"+
		"       [--sasl-mechanism scram-sha-256] [--sasl-user USER:PASSWORD]... [--sasl-superuser USER:PASSWORD]...\n"+
		"       [--tls-cert FILE --tls-key FILE] [--acl USER:OPERATION:RESOURCE-TYPE[:NAME]]... [--acl-file FILE]\n\n"+
		"Runs a single-node development Kafka broker (franz-go's kfake) until SIGINT or SIGTERM.\n"+
		"Topics are created on first use. Without --data-dir everything is lost on exit.\n"+
		"With SASL users, clients must authenticate; with ACLs, a user who is not a superuser may do\n"+
		"only what an ACL allows, e.g. --acl app:Read:Topic:orders --acl 'app:Write:TransactionalId:weir-orders*'\n"+
		"(a trailing * makes the name a prefix). An ACL file holds one rule a line; # starts a comment.")
	addr := fs.String("addr", "127.0.0.1:9092", "`host:port` to listen on; port 0 picks a free port")
	partitions := fs.Int("partitions", 3, "partition count of automatically created topics")
	dataDir := fs.String("data-dir", "", "keep topics and records in this `directory` across restarts")
	expiration := fs.Duration("transactional-id-expiration", devbroker.DefaultTransactionalIDExpiration,
		"forget a transactional id no producer used for this `duration` (Kafka's transactional.id.expiration.ms); "+
			"set it short to rehearse restarting a job after a long outage")
	mechanism := fs.String("sasl-mechanism", string(kafka.ScramSHA256), "SASL `mechanism` of the users: plain, scram-sha-256 or scram-sha-512")
	var users, superusers, acls repeated
	fs.Var(&users, "sasl-user", "a SASL user, `USER:PASSWORD`, subject to the ACLs (repeatable); with any user, clients must authenticate")
	fs.Var(&superusers, "sasl-superuser", "a SASL user who bypasses the ACLs, `USER:PASSWORD` (repeatable)")
	fs.Var(&acls, "acl", "allow a user an operation: `USER:OPERATION:RESOURCE-TYPE[:NAME]` (repeatable); with any ACL, ACLs are enforced")
	aclFile := fs.String("acl-file", "", "`file` of ACL rules, one a line")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `file` to listen with TLS (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` of --tls-cert")
	minSession := fs.Duration("group-min-session-timeout", devbroker.DefaultGroupMinSessionTimeout,
		"the shortest --group-session-timeout a group member may ask for (Kafka's group.min.session.timeout.ms); lower it to rehearse fast failover")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *partitions < 1 {
		return usagef("--partitions must be at least 1, got %d", *partitions)
	}
	if *minSession < devbroker.MinGroupMinSessionTimeout || *minSession > devbroker.DefaultGroupMinSessionTimeout {
		return usagef("--group-min-session-timeout %v: want %v to %v", *minSession,
			devbroker.MinGroupMinSessionTimeout, devbroker.DefaultGroupMinSessionTimeout)
	}
	if *expiration < devbroker.MinTransactionalIDExpiration || *expiration > devbroker.MaxTransactionalIDExpiration {
		return usagef("--transactional-id-expiration %v: want %v to %v", *expiration,
			devbroker.MinTransactionalIDExpiration, devbroker.MaxTransactionalIDExpiration)
	}
	cfg := devbroker.Config{Addr: *addr, Partitions: *partitions, DataDir: *dataDir,
		TransactionalIDExpiration: *expiration, GroupMinSessionTimeout: *minSession, Logger: e.log, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey}
	if err := brokerSecurity(&cfg, *mechanism, users, superusers, acls, *aclFile); err != nil {
		return err
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		return fmt.Errorf("%w\nIs another broker already listening on %s? Pick another --addr (port 0 picks a free one)", err, *addr)
	}
	e.log.Info("weir broker ready; stop with Ctrl-C", "addr", b.Addr(), "partitions", *partitions, "data_dir", *dataDir,
		"transactional_id_expiration", *expiration, "tls", *tlsCert != "", "sasl_users", len(cfg.Users), "acls", len(cfg.ACLs))
	<-ctx.Done()
	e.log.Info("weir broker stopping", "addr", b.Addr())
	return b.Close()
}

// brokerSecurity fills the users and ACLs of cfg from the flags.
func brokerSecurity(cfg *devbroker.Config, mechanism string, users, superusers, acls repeated, aclFile string) error {
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	mech, err := kafka.ParseMechanism(mechanism)
	if err != nil || mech == kafka.NoSASL {
		return usagef("--sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", mechanism)
	}
	for i, list := range []repeated{users, superusers} {
		for _, up := range list {
			name, pass, ok := strings.Cut(up, ":")
			if !ok || name == "" || pass == "" {
				// NB: the value holds a password: do not echo it.
				return usagef("--sasl-user and --sasl-superuser take USER:PASSWORD; one value has no ':' or an empty part")
			}
			cfg.Users = append(cfg.Users, devbroker.User{Mechanism: mech, Name: name, Password: kafka.Password(pass), Superuser: i == 1})
		}
	}
	for _, rule := range acls {
		a, err := devbroker.ParseACL(rule)
		if err != nil {
			return usagef("--acl: %v", err)
		}
		cfg.ACLs = append(cfg.ACLs, a)
	}
	if aclFile != "" {
		more, err := devbroker.ReadACLFile(aclFile)
		if err != nil {
			return usagef("--acl-file: %v", err)
		}
		cfg.ACLs = append(cfg.ACLs, more...)
	}
	if len(cfg.ACLs) > 0 && len(cfg.Users) == 0 {
		return usagef("ACLs need SASL users (--sasl-user) to apply to")
	}
	return nil
}
