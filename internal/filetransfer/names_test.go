package filetransfer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kafkagate/kafkagate/internal/envelope"
)

func TestSafeName(t *testing.T) {
	long := strings.Repeat("n", 300)
	for _, tc := range []struct {
		in, want string
	}{
		{"report.pdf", "report.pdf"},
		{"café — naïve.txt", "café — naïve.txt"},
		{".bashrc", "_.bashrc"},
		{"-rf", "_-rf"},
		{"../x", "file-ID"},
		{"/etc/x", "file-ID"},
		{"a/b", "file-ID"},
		{`a\b`, "file-ID"},
		{"", "file-ID"},
		{".", "file-ID"},
		{"..", "file-ID"},
		{"a\x00b", "file-ID"},
		{"a\nb", "file-ID"},
		{"a\x1bb", "file-ID"},
		{"a\x7fb", "file-ID"},
		{"evil\u202etxt.exe", "file-ID"},
		{"\xff\xfe", "file-ID"},
		{long, "file-ID"},
		{strings.Repeat("n", MaxNameBytes), strings.Repeat("n", MaxNameBytes)},
	} {
		if got, _ := SafeName(tc.in, "ID"); got != tc.want {
			t.Errorf("SafeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// craftChunk builds a one-chunk chunk/1 file straight from
// docs/wire-format.md §3 and §4.2, with any manifest name, including names
// the envelope encoder refuses: what a hostile sender holding the Vault
// permissions could produce.
func craftChunk(t *testing.T, te *testEnv, topic, name string, data []byte) envelope.Record {
	t.Helper()
	dk, err := te.keys.NewDataKey(context.Background(), envelope.DefaultKEK, []byte(topic))
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	fileID := hex.EncodeToString(id)
	okm, err := hkdf.Key(sha256.New, dk.Plaintext, id, "kafkagate chunk/1 A256GCM-HKDF-SHA256-STREAM", 39)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(okm[:32])
	gcm, _ := cipher.NewGCM(block)
	sum := sha256.Sum256(data)
	manifest, _ := json.Marshal(struct {
		V         int    `json:"v"`
		File      string `json:"file"`
		Name      string `json:"name"`
		Size      int    `json:"size"`
		SHA256    string `json:"sha256"`
		Chunks    int    `json:"chunks"`
		ChunkSize int    `json:"chunk_size"`
	}{1, fileID, name, len(data), hex.EncodeToString(sum[:]), 1, max(len(data), 1)})
	hs := []envelope.Header{
		{Key: envelope.HeaderFormat, Value: []byte(envelope.FormatChunk)},
		{Key: envelope.HeaderAlg, Value: []byte(envelope.AlgChunk)},
		{Key: envelope.HeaderKEK, Value: []byte("transit/" + envelope.DefaultKEK)},
		{Key: envelope.HeaderEDEK, Value: []byte(dk.Wrapped)},
		{Key: envelope.HeaderFile, Value: []byte(fileID)},
		{Key: envelope.HeaderChunk, Value: []byte("0")},
		{Key: envelope.HeaderLast, Value: []byte("1")},
		{Key: envelope.HeaderManifest, Value: manifest},
	}
	// The associated data holds the kafkagate headers except the key
	// headers (kek, edek, origin), sorted by name (docs/wire-format.md §3).
	var sorted []envelope.Header
	for _, h := range hs {
		if h.Key != envelope.HeaderKEK && h.Key != envelope.HeaderEDEK {
			sorted = append(sorted, h)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	lp := func(b []byte, x []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...) }
	aad := []byte("kafkagate-aad-v1")
	aad = lp(aad, []byte(topic))
	aad = lp(aad, []byte(fileID))
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(sorted)))
	for _, h := range sorted {
		aad = lp(lp(aad, []byte(h.Key)), h.Value)
	}
	nonce := append(binary.BigEndian.AppendUint32(slices.Clone(okm[32:39]), 0), 1)
	return envelope.Record{Topic: topic, Key: []byte(fileID), Headers: hs, Value: gcm.Seal(nil, nonce, data, aad)}
}

// TestHostileNames sends files whose names try to escape the receive
// folder, in chunk/1 (names in the authenticated manifest, crafted from the
// specification) and in the legacy format (the unauthenticated X-filename
// header). Every file lands directly in the folder, unsafe names become
// generated ones, nothing is written outside, and nothing is overwritten.
func TestHostileNames(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("names")
	hostile := []string{"../x", "/etc/x", "", strings.Repeat("y", 300), "a/b", "..", ".", "nul\x00byte", "ctl\x01\x1b[31mred", "line\nbreak", `back\slash`, "evil\u202etxt.exe"}
	base := t.TempDir()
	dir := filepath.Join(base, "in")
	var recs []envelope.Record
	for _, n := range hostile {
		recs = append(recs, craftChunk(t, te, topic, n, []byte("chunk/1 "+n)))
	}
	// Two files with the same safe name, and a name already taken on disk.
	recs = append(recs, craftChunk(t, te, topic, "same.txt", []byte("first")), craftChunk(t, te, topic, "same.txt", []byte("second")),
		craftChunk(t, te, topic, ".hidden", []byte("dot")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "taken.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, craftChunk(t, te, topic, "taken.txt", []byte("theirs")))
	te.produceRaw(t, recs, 0)
	// Legacy messages: the name is an unauthenticated header.
	for _, n := range []string{"../x", "/etc/passwd", "", "..", "a/b", "nul\x00", strings.Repeat("z", 300)} {
		hs, value, err := envelope.EncodeLegacy(context.Background(), te.keys, "", "placeholder", []byte("legacy "+n))
		if err != nil {
			t.Fatal(err)
		}
		hs[1].Value = []byte(n)
		te.produceRaw(t, []envelope.Record{{Topic: topic, Headers: hs, Value: value}}, 1)
	}

	out := te.receiveOnce(t, topic, dir, recvOpts{})
	if len(out.quarantined) != 0 {
		t.Fatalf("quarantined: %+v", out.quarantined)
	}
	if want := len(recs) + 7; len(out.files) != want {
		t.Fatalf("received %d files, want %d", len(out.files), want)
	}
	for _, got := range out.files {
		if filepath.Dir(got.Path) != dir {
			t.Errorf("%q written at %s, outside %s", got.Name, got.Path, dir)
		}
		b := filepath.Base(got.Path)
		if !got.Renamed && got.Name != "same.txt" && got.Name != "taken.txt" && got.Name != ".hidden" {
			t.Errorf("hostile name %q kept as %q", got.Name, b)
		}
		if got.Renamed && !strings.HasPrefix(strings.TrimPrefix(b, LegacyPrefix), "file-") {
			t.Errorf("hostile name %q written as %q", got.Name, b)
		}
	}
	// Nothing escaped: the base folder holds only in/ and quarantine/ (absent).
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if e.Name() != "in" {
			t.Errorf("file written outside the receive folder: %s", e.Name())
		}
	}
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Error("/etc/x exists")
	}
	read := func(n string) string { b, _ := os.ReadFile(filepath.Join(dir, n)); return string(b) }
	if read("same.txt")+"|"+read("same (1).txt") != "first|second" {
		t.Errorf("same.txt: %q, same (1).txt: %q", read("same.txt"), read("same (1).txt"))
	}
	if read("taken.txt") != "mine" || read("taken (1).txt") != "theirs" {
		t.Errorf("existing file overwritten: %q / %q", read("taken.txt"), read("taken (1).txt"))
	}
	if read("_.hidden") != "dot" {
		t.Error("hidden name not made visible")
	}
}
