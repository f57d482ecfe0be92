package mesh

import (
	"errors"
	"fmt"
	"strings"
)

// ExtensionCluster names the cluster a mesh-delta event is about (a string): the broadcaster's
// events.cluster. Events of a broadcaster without a cluster name do not carry it.
const ExtensionCluster = "meshcluster"

// HeaderCluster names the cluster of a snapshot or a batch of deltas (GET /v1/mesh,
// /v1/getEventMesh, /v1/deltas, a NATS snapshot chunk) when the broadcaster has one.
const HeaderCluster = "Mesh-Cluster"

// MaxClusterLength bounds a cluster name in bytes (a DNS label's length).
const MaxClusterLength = 63

// CheckCluster says why name cannot name a cluster, nil when it can. A cluster name is one
// NATS subject token, one MQTT topic level, one URI path segment and a CloudEvents extension
// value, unescaped in all of them: 1 to 63 letters, digits and '-', starting and ending with
// a letter or a digit.
func CheckCluster(name string) error {
	switch {
	case name == "":
		return errors.New("empty: a cluster name is 1 to 63 letters, digits and '-'")
	case len(name) > MaxClusterLength:
		return fmt.Errorf("%q is %d bytes long, more than %d", name, len(name), MaxClusterLength)
	case name[0] == '-' || name[len(name)-1] == '-':
		return fmt.Errorf("%q: a cluster name starts and ends with a letter or a digit", name)
	}
	for i, r := range name {
		if r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return fmt.Errorf("%q: %q at byte %d cannot appear in a cluster name (letters, digits and '-' only: "+
				"it is a NATS subject token, an MQTT topic level and a segment of the CloudEvents source)", name, r, i)
		}
	}
	return nil
}

// ClusterSource is the CloudEvents source of the events of cluster: source with the cluster
// name as one more path segment ("/event-mesh-broadcaster" and "east" give
// "/event-mesh-broadcaster/east"); source itself when cluster is empty.
func ClusterSource(source, cluster string) string {
	if cluster == "" {
		return source
	}
	return strings.TrimSuffix(source, "/") + "/" + cluster
}

// ClusterSnapshotEnvelope is SnapshotEnvelope for a broadcaster named cluster: the snapshot
// also carries "cluster" (before "mesh"); with an empty cluster it is SnapshotEnvelope.
func ClusterSnapshotEnvelope(cluster, epoch string, seq uint64) (head, tail string) {
	head, tail = SnapshotEnvelope(epoch, seq)
	if cluster == "" {
		return head, tail
	}
	return strings.TrimSuffix(head, `"mesh":`) + `"cluster":` + quote(cluster) + `,"mesh":`, tail
}

// MQTTClusterStatusTopic is MQTTStatusTopic for a broadcaster named cluster:
// <prefix>-status/<cluster>, so that broadcasters sharing a prefix keep a status each.
func MQTTClusterStatusTopic(prefix, cluster string) string {
	return levelOf(MQTTStatusTopic(prefix), cluster)
}

// MQTTClusterInfoTopic is MQTTInfoTopic for a broadcaster named cluster: <prefix>-info/<cluster>.
func MQTTClusterInfoTopic(prefix, cluster string) string {
	return levelOf(MQTTInfoTopic(prefix), cluster)
}

// MQTTEntityRoot is the topic under which a broadcaster's entities are retained: the prefix,
// and the cluster as one more level when there is one (<prefix>/<cluster>/<key>).
func MQTTEntityRoot(prefix, cluster string) string { return levelOf(prefix, cluster) }

func levelOf(topic, cluster string) string {
	if cluster == "" {
		return topic
	}
	return topic + "/" + cluster
}

// NATSClusterResyncSubject is NATSResyncSubject for a broadcaster named cluster:
// <prefix>-resync.<cluster>, so that a request reaches that cluster's broadcaster (replicas of
// one cluster share it through their queue group).
func NATSClusterResyncSubject(prefix, cluster string) string {
	if cluster == "" {
		return NATSResyncSubject(prefix)
	}
	return NATSResyncSubject(prefix) + "." + cluster
}
