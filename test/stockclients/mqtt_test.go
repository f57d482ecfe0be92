package stockclients

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// mosquitto runs a Mosquitto of the test's own (Debian's mosquitto package) with its defaults
// (max_queued_messages 1000, max_inflight_messages 20) on a free loopback port, and returns its
// URL.
func mosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, statErr := os.Stat(p); statErr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatalf("the stock MQTT broker is Debian's mosquitto package (apt-get install mosquitto): %v", err)
	}
	addr := testkit.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s %s\nallow_anonymous true\npersistence false\n", port, host)), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	testkit.Eventually(t, "mosquitto to listen", 10*time.Second, func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return "mqtt://" + addr
}

func randomPrefix(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "stock-" + hex.EncodeToString(b) + "/eventmesh"
}

// The CloudEvents JavaScript SDK's MQTT binding, on MQTT.js, decodes every message under the
// prefix and on the side topics (status, info, sweep markers) by its content type: each message
// it takes for an event decodes and validates, and no other message claims to be one (the
// retained clears and markers are empty without a content type; status and info are JSON).
func TestCloudEventsSDKDecodesEveryMQTTMessage(t *testing.T) {
	t.Parallel()
	broker := mosquitto(t)
	prefix := randomPrefix(t)
	sub := startClient(t, "mqtt-decode.mjs", broker, prefix)
	sub.wait(t, "the subscription", 0, 60*time.Second, func(l map[string]any) bool { return l["ready"] == true })

	dir := testkit.CopyDir(t, "../../examples/mesh")
	args := []string{"--mqtt", broker, "--mqtt-topic-prefix", prefix}
	first := startBroadcaster(t, dir, testkit.FreeAddr(t), args...)
	testkit.Eventually(t, "the broadcaster to load", 60*time.Second, first.ready)
	m, _ := getMesh(t, first.base)
	sub.wait(t, "the info topic at the mesh's sequence", 0, 60*time.Second, func(l map[string]any) bool {
		return l["topic"] == prefix+"-info" && l["as"] == "json"
	})
	// A deletion: the deleted event, then the empty retained message that clears the topic.
	ets := filepath.Join(dir, "shop", "eventtypes.yaml")
	data, _ := os.ReadFile(ets)
	docs := strings.Split(string(data), "\n---\n")
	if err := os.WriteFile(ets, []byte(strings.Join(docs[1:], "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "the clear of the deleted EventType's topic", 0, 60*time.Second, func(l map[string]any) bool {
		return l["topic"] == prefix+"/eventing.knative.dev/EventType/shop/order-created" && l["as"] == "empty"
	})
	// A restart: the offline status, a new epoch (its opening, a sweep and its markers) and online.
	first.stop(t)
	restart := len(sub.all())
	second := startBroadcaster(t, dir, testkit.FreeAddr(t), args...)
	testkit.Eventually(t, "the restarted broadcaster to load", 60*time.Second, second.ready)
	m2, _ := getMesh(t, second.base)
	sub.wait(t, "the restarted broadcaster's sweep marker", restart, 60*time.Second, func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["topic"]), prefix+"-sweep/")
	})
	sub.wait(t, "the restarted broadcaster's info", restart, 60*time.Second, func(l map[string]any) bool {
		return l["topic"] == prefix+"-info" && l["as"] == "json"
	})
	opened := 0
	sub.wait(t, "the new epoch's opening", restart, 60*time.Second, func(l map[string]any) bool {
		if l["as"] == "cloudevent" {
			opened++
		}
		return opened == int(m2.Sequence)
	})
	sub.send(t, "close")

	seen := map[string]int{}
	for _, l := range sub.all() {
		if _, ok := l["topic"]; !ok {
			continue
		}
		topic := fmt.Sprint(l["topic"])
		where := "entity"
		switch {
		case topic == prefix+"-status", topic == prefix+"-info":
			where = strings.TrimPrefix(topic, prefix)
		case strings.HasPrefix(topic, prefix+"-sweep/"):
			where = "-sweep/"
		case !strings.HasPrefix(topic, prefix+"/"):
			t.Errorf("a message on %s", topic)
		}
		if l["ok"] != true {
			t.Errorf("%s (content type %v, %v bytes): %v", topic, l["contentType"], l["bytes"], l["error"])
		}
		seen[where+" "+fmt.Sprint(l["as"])+" "+fmt.Sprint(l["contentType"])]++
	}
	t.Logf("messages by topic, decoded as, content type: %v", seen)
	for _, want := range []string{"entity cloudevent application/cloudevents+json", "entity empty <nil>", "-status json application/json",
		"-info json application/json", "-sweep/ empty <nil>"} {
		if seen[want] == 0 {
			t.Errorf("no %s message", want)
		}
	}
	for kind, n := range seen {
		if !strings.HasPrefix(kind, "entity cloudevent") && strings.Contains(kind, "cloudevent") {
			t.Errorf("%d messages %s: only entity topics carry events", n, kind)
		}
	}
	if n := seen["entity cloudevent application/cloudevents+json"]; n < int(m.Sequence+m2.Sequence) {
		t.Errorf("%d events decoded, want at least both epochs' openings (%d and %d)", n, m.Sequence, m2.Sequence)
	}
}

var sentOf = regexp.MustCompile(`the broker sent (\d+) of the (\d+) retained messages`)

// With Mosquitto's defaults a late subscriber gets part of a large mesh's retained messages;
// the broadcaster's warning names the number such a subscriber (MQTT.js, QoS 1) receives.
func TestSweepCountIsWhatASubscriberReceives(t *testing.T) {
	t.Parallel()
	const entities = 1515
	broker := mosquitto(t)
	prefix := randomPrefix(t)
	dir := writeMesh(t, 15, 101, 0) // 1,515 Brokers
	b := startBroadcaster(t, dir, testkit.FreeAddr(t), "--mqtt", broker, "--mqtt-topic-prefix", prefix)
	var warned []string
	testkit.Eventually(t, "the sweep's warning", 2*time.Minute, func() bool {
		warned = sentOf.FindStringSubmatch(b.Logs())
		return warned != nil
	})
	if warned[2] != strconv.Itoa(entities) {
		t.Fatalf("the warning counts %s retained messages in the mesh, want %d", warned[2], entities)
	}
	counter := startClient(t, "mqtt-count.mjs", broker, prefix)
	got, _ := counter.wait(t, "the late subscriber's count", 0, 2*time.Minute, func(l map[string]any) bool { _, ok := l["retained"]; return ok })
	received := number(got["retained"])
	t.Logf("of %d retained messages, the broadcaster's sweep received %s, a late MQTT.js subscriber %d", entities, warned[1], received)
	if received >= entities {
		t.Fatalf("precondition: the broker handed all %d retained messages to a late subscriber; Mosquitto's defaults should drop some", received)
	}
	if warned[1] != strconv.Itoa(received) {
		t.Errorf("the warning says the broker sent %s of %d; a late subscriber received %d", warned[1], entities, received)
	}
}
