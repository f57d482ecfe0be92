// Command genmesh writes a manifests file of about n mesh entities (Brokers with 10 EventTypes
// each, 10 Brokers per namespace) for load tests: genmesh -entities 10000 > dir/mesh.yaml.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
)

func main() {
	entities := flag.Int("entities", 10000, "about how many entities")
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for b := range *entities / 11 {
		ns, broker := fmt.Sprint("ns-", b/10), fmt.Sprint("broker-", b%10)
		fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: %s, namespace: %s, labels: {app: shop}}\n", broker, ns)
		for j := range 10 {
			fmt.Fprintf(w, "---\napiVersion: eventing.knative.dev/v1beta2\nkind: EventType\n"+
				"metadata: {name: %s-et-%d, namespace: %s}\n"+
				"spec: {type: com.example.t%d, description: an event type, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: %s}}\n",
				broker, j, ns, j, broker)
		}
	}
}
