package devbroker

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACL allows a user an operation on a resource, as Kafka's ACLs do (only
// allow rules: whatever no ACL allows is denied).
type ACL struct {
	User         string
	Operation    kmsg.ACLOperation    // Read, Write, Describe, IdempotentWrite, All, …
	ResourceType kmsg.ACLResourceType // Topic, Group, TransactionalId, Cluster
	// Name is the resource's name ("*": every resource of the type);
	// Prefixed makes it a prefix. Unused for the cluster.
	Name     string
	Prefixed bool
}

// String returns the rule in ParseACL's syntax.
func (a ACL) String() string {
	s := fmt.Sprintf("%s:%s:%s", a.User, a.Operation, a.ResourceType)
	if a.ResourceType != kmsg.ACLResourceTypeCluster {
		s += ":" + a.Name
		if a.Prefixed {
			s += "*"
		}
	}
	return s
}

func (a ACL) kfake() kfake.ACL {
	name, pattern := a.Name, kmsg.ACLResourcePatternTypeLiteral
	switch {
	case a.ResourceType == kmsg.ACLResourceTypeCluster:
		name = "kafka-cluster"
	case a.Prefixed:
		pattern = kmsg.ACLResourcePatternTypePrefixed
	}
	return kfake.ACL{Resource: a.ResourceType, Name: name, Pattern: pattern, Operation: a.Operation, Allow: true}
}

// ParseACL parses a rule USER:OPERATION:RESOURCE-TYPE[:NAME], with the
// operation and resource type as kafka-acls.sh names them (in any case,
// with or without dashes): "app:Read:Topic:orders",
// "app:Write:TransactionalId:weir-orders*" (a trailing * makes NAME a
// prefix; "*" alone is every resource of the type),
// "app:IdempotentWrite:Cluster".
func ParseACL(s string) (ACL, error) {
	bad := func(why string) (ACL, error) {
		return ACL{}, fmt.Errorf("devbroker: ACL %q: %s; want USER:OPERATION:RESOURCE-TYPE[:NAME], e.g. app:Read:Topic:orders or app:Write:TransactionalId:weir-orders*", s, why)
	}
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 3 || len(parts) > 4 {
		return bad("wrong number of fields")
	}
	op, err := kmsg.ParseACLOperation(parts[1])
	if err != nil || op <= kmsg.ACLOperationAny {
		return bad(fmt.Sprintf("unknown operation %q", parts[1]))
	}
	rt, err := kmsg.ParseACLResourceType(parts[2])
	if err != nil || (rt != kmsg.ACLResourceTypeTopic && rt != kmsg.ACLResourceTypeGroup &&
		rt != kmsg.ACLResourceTypeTransactionalId && rt != kmsg.ACLResourceTypeCluster) {
		return bad(fmt.Sprintf("unknown resource type %q (want Topic, Group, TransactionalId or Cluster)", parts[2]))
	}
	a := ACL{User: parts[0], Operation: op, ResourceType: rt}
	if a.User == "" {
		return bad("no user")
	}
	switch {
	case rt == kmsg.ACLResourceTypeCluster:
		if len(parts) == 4 && parts[3] != "" && parts[3] != "kafka-cluster" {
			return bad("the cluster has no name")
		}
	case len(parts) != 4 || parts[3] == "":
		return bad("no resource name")
	default:
		a.Name = parts[3]
		if len(a.Name) > 1 && strings.HasSuffix(a.Name, "*") {
			a.Name, a.Prefixed = strings.TrimSuffix(a.Name, "*"), true
		}
	}
	return a, nil
}

// ReadACLFile reads rules in ParseACL's syntax, one a line; blank lines and
// lines starting with # are skipped.
func ReadACLFile(path string) ([]ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("devbroker: ACL file: %w", err)
	}
	defer f.Close()
	var acls []ACL
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a, err := ParseACL(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		acls = append(acls, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("devbroker: ACL file %s: %w", path, err)
	}
	return acls, nil
}
