package devbroker

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listSASLHandshakeV0 makes the broker answer ApiVersions (up to v4) with
// SaslHandshake listed from version 0. kfake serves SaslHandshake v1 only,
// which every client since Kafka 1.0 uses, but librdkafka 2.0 (Debian's
// kcat) authenticates only with a broker that lists v0, and then sends v1
// anyway. Without this, kcat cannot read a dev broker with SASL users.
//
// It asks the broker for its own answer once, over a connection of its own
// (before authentication, which ApiVersions needs none of), and serves a
// copy of it.
func listSASLHandshakeV0(c *kfake.Cluster, withTLS bool) error {
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	if withTLS {
		// NB: this is the broker's own listener on this host; what is
		// fetched is public.
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	own, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("devbroker: ask the broker for its API versions: %w", err)
	}
	keys := slices.Clone(own.ApiKeys)
	for i := range keys {
		if keys[i].ApiKey == int16(kmsg.SASLHandshake) {
			keys[i].MinVersion = 0
		}
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		if req.Version > 4 { // v5 checks the cluster and node: kfake's own answer
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = slices.Clone(keys)
		resp.SupportedFeatures = own.SupportedFeatures
		resp.FinalizedFeaturesEpoch = own.FinalizedFeaturesEpoch
		resp.FinalizedFeatures = own.FinalizedFeatures
		return resp, nil, true
	})
	return nil
}
