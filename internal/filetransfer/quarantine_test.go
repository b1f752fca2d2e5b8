package filetransfer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/transit"
	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// TestVaultRefusalQuarantineAndRedrive: a receiver whose Vault token may not
// unwrap the file's data key (HTTP 403) quarantines the file's records
// instead of losing them; once the policy grants the key, redrive produces
// them again (keeping the quarantine entries, marked redriven) and the same
// receiver writes the file.
func TestVaultRefusalQuarantineAndRedrive(t *testing.T) {
	te := newTestEnv(t)
	ctx := context.Background()
	sys := te.VC.API().Sys()
	const noDecrypt = `path "transit/datakey/plaintext/*" { capabilities = ["update"] }`
	if err := sys.PutPolicy("receiver", noDecrypt); err != nil {
		t.Fatal(err)
	}
	sec, err := te.VC.API().Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"receiver"}})
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vaultclient.New(vaultclient.Config{Addr: te.Vault.Addr, Token: sec.Auth.ClientToken, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	op, err := envelope.NewOpener(envelope.NewKMSKeys(transit.New(vc, transit.Options{})), envelope.OpenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()

	topic := newTopic("refused")
	data := randomData(2500)
	res, err := te.sender(t, 1000).Send(ctx, File{Topic: topic, Name: "secret.bin", Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	dir, qdir := filepath.Join(base, "in"), filepath.Join(base, "quarantine")
	ro := recvOpts{opener: op, quarantine: &DirQuarantine{Dir: qdir}, group: "refused"}
	out := te.receiveOnce(t, topic, dir, ro)
	if len(out.files) != 0 {
		t.Fatalf("written without the key: %+v", out.files)
	}
	if got := out.quarantinedOffsets(); !slices.Equal(got, []int64{res.FirstOffset, res.FirstOffset + 1, res.FirstOffset + 2}) {
		t.Fatalf("quarantined %v (%+v)", got, out.quarantined)
	}
	q := out.quarantined[0]
	if q.Reason != ReasonUndecryptable || !strings.Contains(q.Err.Error(), "permission denied") {
		t.Fatalf("quarantine reason %q: %v", q.Reason, q.Err)
	}

	// The key becomes available: grant decrypt, then redrive.
	if err := sys.PutPolicy("receiver", noDecrypt+"\n"+`path "transit/decrypt/*" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	rr, err := Redrive(ctx, RedriveOptions{Dir: qdir, Topic: topic, Producer: te.kc, Logger: te.log})
	if err != nil || rr.Redriven != 3 {
		t.Fatalf("redrive: %+v %v", rr, err)
	}
	if rr, err := Redrive(ctx, RedriveOptions{Dir: qdir, Topic: topic, Producer: te.kc, Logger: te.log}); err != nil || rr.Redriven != 0 || rr.AlreadyDone != 3 {
		t.Fatalf("second redrive: %+v %v", rr, err)
	}
	if rr, err := Redrive(ctx, RedriveOptions{Dir: qdir, Topic: "other", Producer: te.kc, Logger: te.log}); err != nil || rr.Redriven != 0 || rr.OtherTopic != 3 {
		t.Fatalf("redrive of another topic: %+v %v", rr, err)
	}
	marks, _ := filepath.Glob(filepath.Join(qdir, "*"+RedrivenSuffix))
	values, _ := filepath.Glob(filepath.Join(qdir, "*.value"))
	if len(marks) != 3 || len(values) != 3 {
		t.Fatalf("%d marks, %d entries kept", len(marks), len(values))
	}
	out = te.receiveOnce(t, topic, dir, ro)
	if len(out.files) != 1 || len(out.quarantined) != 0 {
		t.Fatalf("after redrive: files %+v quarantined %+v", out.files, out.quarantined)
	}
	if got, _ := os.ReadFile(out.files[0].Path); !bytes.Equal(got, data) || out.files[0].FileID != res.FileID {
		t.Fatal("redriven file differs")
	}
	recs, err := te.kc.Read(ctx, topic, res.Partition, res.LastOffset+1, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read redriven: %v", err)
	}
	if v, ok := envelope.HeaderValue(recs[0].Headers, NoteRedriven); !ok || !strings.HasPrefix(string(v), topic+"/") {
		t.Fatalf("redriven record lacks %s: %v", NoteRedriven, recs[0].Headers)
	}
}

// TestDeadLetterTopic: with a DLQ, the records of a tampered file are
// produced to the dead-letter topic exactly as read (still ciphertext),
// with the reason and source as unauthenticated note headers.
func TestDeadLetterTopic(t *testing.T) {
	te := newTestEnv(t)
	topic, dlq := newTopic("dlqsrc"), newTopic("dlq")
	data := randomData(2500)
	recs := te.encodeChunks(t, topic, "x.bin", data, 1000)
	recs[1] = cloneRec(recs[1])
	recs[1].Value[3] ^= 1
	te.produceRaw(t, recs, 0)
	dir := filepath.Join(t.TempDir(), "in")
	out := te.receiveOnce(t, topic, dir, recvOpts{quarantine: &DLQ{Producer: te.kc, Topic: dlq}})
	if len(out.files) != 0 || !slices.Equal(out.quarantinedOffsets(), []int64{0, 1, 2}) {
		t.Fatalf("files %+v quarantined %+v", out.files, out.quarantined)
	}
	if !strings.HasPrefix(out.quarantined[0].Locations[0], "dlq:"+dlq+"/") {
		t.Fatalf("location %v", out.quarantined[0].Locations)
	}
	var got []envelope.Record
	ps, _ := te.kc.Partitions(dlq)
	for _, p := range ps {
		rs, err := te.kc.Read(context.Background(), dlq, p, -2, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r)
		}
	}
	if len(got) != 3 {
		t.Fatalf("dead-letter topic holds %d records", len(got))
	}
	for _, g := range got {
		src, _ := envelope.HeaderValue(g.Headers, NoteSource)
		reason, _ := envelope.HeaderValue(g.Headers, NoteReason)
		i := int(src[len(src)-1] - '0')
		if !strings.HasPrefix(string(src), topic+"/0/") || string(reason) != ReasonTampered ||
			!bytes.Equal(g.Value, recs[i].Value) || !bytes.Equal(g.Key, recs[i].Key) || len(g.Headers) != len(recs[i].Headers)+2 {
			t.Fatalf("dead letter %s differs from the original", src)
		}
	}
}

// TestCommitOnlyAfterFileWritten: a receiver stopped while a file is in
// progress has not committed past the file's first chunk, so the next run
// reassembles the whole file; and a file delivered again to the same folder
// (another group) is recognised from the journal and not written twice.
func TestCommitOnlyAfterFileWritten(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("commit")
	data := randomData(4500)
	recs := te.encodeChunks(t, topic, "slow.bin", data, 1000)
	te.produceRaw(t, recs[:3], 0)
	base := t.TempDir()
	dir := filepath.Join(base, "in")

	ctx, cancel := context.WithCancel(context.Background())
	r, err := NewReceiver(ReceiverOptions{Dir: dir, Topic: topic, Group: "commit", Settings: te.settings, Kafka: te.kc,
		Opener: te.opener(t), Quarantine: &DirQuarantine{Dir: filepath.Join(base, "q")}, IncompleteTimeout: time.Minute, Logger: te.log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, _ := filepath.Glob(filepath.Join(dir, StateDirName, "partial", "partial-*"))
		if len(parts) == 1 {
			if fi, err := os.Stat(parts[0]); err == nil && fi.Size() == 3000 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the receiver did not start the file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, StateDirName, "partial", "*")); len(parts) != 0 || len(listFiles(t, dir)) != 0 {
		t.Fatalf("left behind: %v %v", parts, listFiles(t, dir))
	}

	te.produceRaw(t, recs[3:], 0)
	out := te.receiveOnce(t, topic, dir, recvOpts{group: "commit"})
	if len(out.files) != 1 || len(out.quarantined) != 0 {
		t.Fatalf("files %+v quarantined %+v", out.files, out.quarantined)
	}
	if got, _ := os.ReadFile(out.files[0].Path); !bytes.Equal(got, data) {
		t.Fatal("file differs")
	}
	out = te.receiveOnce(t, topic, dir, recvOpts{group: "another"})
	if len(out.files) != 1 || !out.files[0].Duplicate || len(listFiles(t, dir)) != 1 {
		t.Fatalf("redelivery: %+v, dir %v", out.files, listFiles(t, dir))
	}
}

// TestTooManyFilesInProgress: with room for one file in progress, a second
// interleaved file evicts the first into quarantine (its records kept), and
// the second is written.
func TestTooManyFilesInProgress(t *testing.T) {
	te := newTestEnv(t)
	topic := newTopic("many")
	data := randomData(2500)
	a := te.encodeChunks(t, topic, "a.bin", data, 1000)
	b := te.encodeChunks(t, topic, "b.bin", data, 1000)
	te.produceRaw(t, []envelope.Record{a[0], b[0], a[1], b[1], a[2], b[2]}, 0)
	dir := filepath.Join(t.TempDir(), "in")
	out := te.receiveOnce(t, topic, dir, recvOpts{maxOpen: 1})
	if files := listFiles(t, dir); len(files) != 1 || files[0] != "b.bin" {
		t.Fatalf("dir %v", files)
	}
	if got := out.quarantinedOffsets(); !slices.Equal(got, []int64{0, 2, 4}) || out.quarantined[0].Reason != ReasonTooManyFiles {
		t.Fatalf("quarantined %v %+v", got, out.quarantined)
	}
}
