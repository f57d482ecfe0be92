package transports

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Deps is what the broadcaster gives each transport it opens from the transport's settings
// (see transports/destinations): the same for every transport, each takes what it needs.
type Deps struct {
	Encoder *codec.Encoder
	Log     *slog.Logger
	// CA holds PEM certificates every transport trusts beside the system's and its own
	// (transports.caFile); nil when none.
	CA []byte
	// Epoch is the epoch the publishers open.
	Epoch string
	// Latest is the latest change of every entity; Count how many entities the mesh has.
	Latest func() []mesh.Change
	Count  func() int
	// Kube is the broadcaster's own client configuration of the cluster it watches, and
	// Namespace its own namespace; nil and "" in manifests mode.
	Kube      *rest.Config
	Namespace string
}

// Secret is a secret given inline or, read now, from a file ("" when neither).
func Secret(inline, file string) (string, error) {
	if file == "" {
		return inline, nil
	}
	return readSecretFile(file)
}

// CheckSecretFile checks a secret given in a file: not also inline (under inlineKey), and
// readable and not empty.
func CheckSecretFile(inline, file, inlineKey string) error {
	if inline != "" {
		return fmt.Errorf("give this or %s, not both", inlineKey)
	}
	_, err := readSecretFile(file)
	return err
}

// readSecretFile reads a secret from a file (a mounted Kubernetes Secret), without the
// trailing newline editors add.
func readSecretFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return "", pathErr.Err
		}
		return "", err
	}
	secret := strings.TrimRight(string(raw), "\r\n")
	if secret == "" {
		return "", errors.New("the file is empty")
	}
	return secret, nil
}
