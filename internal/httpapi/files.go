package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kafkagate/kafkagate/internal/envelope"
	"github.com/kafkagate/kafkagate/internal/filetransfer"
	"github.com/kafkagate/kafkagate/internal/policy"
)

// FileSender streams a file into a topic as chunk/1 records
// (*filetransfer.Sender). kek is the topic policy's envelope key.
type FileSender interface {
	SendFile(ctx context.Context, topic, kek, name string, body io.Reader) (filetransfer.Result, error)
}

// Error codes of the file upload endpoint (docs/files.md).
const (
	CodeFileName        = 40020 // ?name= missing or not a bare file name
	CodeFileBody        = 40021 // the upload body could not be read to its end
	CodeFileNotEnvelope = 42220 // the topic's policy is not in envelope mode
	CodeFilesDisabled   = 50120 // this gateway has no file sender configured (501)
)

// maxUploadName bounds ?name=: receivers replace longer names anyway.
const maxUploadName = 255

type fileResponse struct {
	FileID    string `json:"file_id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Chunks    int64  `json:"chunks"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition_id"`
}

// uploadFile handles POST .../topics/{topic}/files?name=NAME: the request
// body (any length, chunked or not) is read chunk by chunk, encrypted under
// one fresh data key and produced as chunk/1 records; it is never held in
// memory whole. The upload is not bound by the request timeout, only by an
// idle timeout of the same length between body reads, and it stops if the
// client goes away.
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	if s.cfg.Files == nil {
		writeErr(w, newErr(CodeFilesDisabled, "file upload is not enabled in this gateway"))
		return
	}
	p, aerr := s.policyFor(topic)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	if p.Mode != policy.Envelope {
		writeErr(w, newErr(CodeFileNotEnvelope, fmt.Sprintf("topic %s has a %s policy; file upload needs mode = envelope", topic, p.Mode)))
		return
	}
	name := r.URL.Query().Get("name")
	if !envelope.ValidFileName(name) || len(name) > maxUploadName {
		writeErr(w, &apiError{ErrorCode: CodeFileName, Message: fmt.Sprintf("query parameter name must be a bare file name of at most %d bytes (UTF-8, no '/', '\\' or NUL, not . or ..)", maxUploadName), Field: "name"})
		return
	}
	principal := principalName(r)
	release, ok := s.uploads.acquire(principal)
	if !ok {
		writeBusy(w, CodePrincipalBusy, fmt.Sprintf("principal %s already has %d concurrent uploads; retry later", principal, s.cfg.MaxUploadsPerPrincipal))
		return
	}
	defer release()

	// The request timeout does not apply to this route (longLived): the
	// upload lasts as long as its client keeps sending, each read bounded by
	// an idle deadline.
	ctx := r.Context()
	body := &uploadBody{r: r.Body, rc: http.NewResponseController(w), idle: s.cfg.RequestTimeout}

	res, err := s.cfg.Files.SendFile(ctx, topic, p.Envelope.Key, name, body)
	if err != nil {
		partial := ""
		if res.Chunks > 0 {
			partial = fmt.Sprintf(" (%d chunks of file %s were produced before the failure; receivers quarantine the incomplete file)", res.Chunks, res.FileID)
		}
		var ae *apiError
		switch {
		case body.err != nil:
			ae = newErr(CodeFileBody, "the upload body could not be read to its end"+partial)
		case errors.Is(err, filetransfer.ErrTooLarge):
			ae = newErr(CodeRecordTooLarge, "the file's chunk records do not fit Kafka's message size limit; nothing was produced")
		default:
			ae = fromError(err)
			if partial != "" {
				ae.Message += partial
			}
		}
		s.log.Warn("file upload failed", "topic", topic, "file_id", res.FileID, "chunks_produced", res.Chunks, "error", err)
		writeErr(w, ae)
		return
	}
	_ = body.rc.SetReadDeadline(time.Time{})
	writeJSON(w, http.StatusOK, fileResponse{FileID: res.FileID, Name: res.Name, Size: res.Size, SHA256: res.SHA256,
		Chunks: res.Chunks, Topic: res.Topic, Partition: res.Partition})
}

// uploadBody reads the request body with an idle deadline renewed before
// every read, and remembers a read failure.
type uploadBody struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	// stop, when set and true, ends reading (errStreamStopped).
	stop func() bool
	err  error
}

func (b *uploadBody) Read(p []byte) (int, error) {
	// Not every ResponseWriter supports deadlines; the client's own
	// disconnect still ends the read then.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	if b.stop != nil && b.stop() {
		return 0, errStreamStopped
	}
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}
