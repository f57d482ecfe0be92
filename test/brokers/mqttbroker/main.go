// Command mqttbroker runs an MQTT v5 broker (mochi-mqtt) for the tests, in its own process:
// mochi has a data race between retained-message writes and subscription scans, which the
// race detector would pin on any test that embeds it. It prints its address, then serves
// until killed.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("tls-cert", "", "PEM certificate (with -tls-key: TLS only)")
	key := flag.String("tls-key", "", "PEM key")
	users := flag.String("users", "", "file of user:password lines (none: anyone may connect)")
	pending := flag.Int("max-pending", 1<<20, "messages queued for one client beyond which the broker drops")
	flag.Parse()
	if err := run(*addr, *cert, *key, *users, *pending); err != nil {
		fmt.Fprintln(os.Stderr, "mqttbroker:", err)
		os.Exit(1)
	}
}

func run(addr, cert, key, users string, pending int) error {
	// A subscriber to a whole mesh gets one retained message per entity at once: room for far
	// more than the default 8,192 pending writes (mochi drops beyond them).
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(pending)
	caps.MaximumInflight = 65535
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler), Capabilities: caps})
	if users == "" {
		if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
			return err
		}
	} else {
		f, err := os.Open(users)
		if err != nil {
			return err
		}
		var rules auth.AuthRules
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if user, password, ok := strings.Cut(sc.Text(), ":"); ok {
				rules = append(rules, auth.AuthRule{Username: auth.RString(user), Password: auth.RString(password), Allow: true})
			}
		}
		f.Close()
		if err := s.AddHook(new(auth.Hook), &auth.Options{Ledger: &auth.Ledger{Auth: rules,
			ACL: auth.ACLRules{{Filters: auth.Filters{"#": auth.ReadWrite}}}}}); err != nil {
			return err
		}
	}
	config := listeners.Config{ID: "tcp", Address: addr}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return err
		}
		config.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	tcp := listeners.NewTCP(config)
	if err := s.AddListener(tcp); err != nil {
		return err
	}
	fmt.Println(tcp.Address())
	go s.Serve()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	return s.Close()
}
