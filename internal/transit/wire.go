package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/kafkagate/kafkagate/internal/vaultclient"
)

// entry is one batch_input item: name set to its value (raw in base64 when
// b64 is set, else text as it is), with the associated data and the
// derivation context in base64 when they are non-nil.
type entry struct {
	name         string // plaintext, ciphertext or input
	raw          []byte
	text         string
	b64          bool
	aad, context []byte
}

// result is one batch_results item.
type result struct {
	Ciphertext, Plaintext, HMAC, Error string
}

// emptyResult is the result of a null batch_results item.
const emptyResult = "empty result"

// valueLen is the length of e's value as sent (before JSON quoting).
func (e *entry) valueLen() int {
	if e.b64 {
		return base64.StdEncoding.EncodedLen(len(e.raw))
	}
	return len(e.text)
}

// size estimates the JSON size of e in a batch_input call.
func (e *entry) size() int {
	n := 2 + len(e.name) + e.valueLen() + 6
	if e.aad != nil {
		n += len("associated_data") + base64.StdEncoding.EncodedLen(len(e.aad)) + 6
	}
	if e.context != nil {
		n += len("context") + base64.StdEncoding.EncodedLen(len(e.context)) + 6
	}
	return n
}

// asMap is e as the generic map a plain Logical takes.
func (e *entry) asMap() map[string]any {
	v := e.text
	if e.b64 {
		v = base64.StdEncoding.EncodeToString(e.raw)
	}
	m := map[string]any{e.name: v}
	if e.aad != nil {
		m["associated_data"] = base64.StdEncoding.EncodeToString(e.aad)
	}
	if e.context != nil {
		m["context"] = base64.StdEncoding.EncodeToString(e.context)
	}
	return m
}

// parseBatchAnswer reads the batch_results of Vault's answer to a
// batch_input call of n items (an empty answer has none). An item that is not an
// object gets the error emptyResult. It is false when the answer is not
// well-formed JSON.
func parseBatchAnswer(answer []byte, n int) ([]result, bool) {
	if len(answer) == 0 {
		return nil, true
	}
	if !gjson.ValidBytes(answer) {
		return nil, false
	}
	items := gjson.GetBytes(answer, "data.batch_results")
	if !items.IsArray() {
		return nil, true
	}
	res := make([]result, 0, n)
	items.ForEach(func(_, item gjson.Result) bool {
		var r result
		if !item.IsObject() {
			r.Error = emptyResult
		}
		item.ForEach(func(k, v gjson.Result) bool {
			if v.Type != gjson.String {
				return true
			}
			switch k.Str {
			case "ciphertext":
				r.Ciphertext = v.Str
			case "plaintext":
				r.Plaintext = v.Str
			case "hmac":
				r.HMAC = v.Str
			case "error":
				r.Error = v.Str
			}
			return true
		})
		res = append(res, r)
		return true
	})
	return res, true
}

// appendBatchBody appends the JSON body of a batch_input call of in, with
// partial_failure_response_code so one bad item fails only itself.
func appendBatchBody(b []byte, in []entry) []byte {
	b = append(b, `{"batch_input":[`...)
	for i := range in {
		e := &in[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"`...)
		b = append(b, e.name...)
		b = append(b, `":`...)
		if e.b64 {
			b = appendBase64(b, e.raw)
		} else {
			b = appendJSONString(b, e.text)
		}
		if e.aad != nil {
			b = append(b, `,"associated_data":`...)
			b = appendBase64(b, e.aad)
		}
		if e.context != nil {
			b = append(b, `,"context":`...)
			b = appendBase64(b, e.context)
		}
		b = append(b, '}')
	}
	return append(b, `],"partial_failure_response_code":207}`...)
}

// batchBodySize is the capacity appendBatchBody needs for in.
func batchBodySize(in []entry) int {
	n := 64
	for i := range in {
		n += in[i].size()
	}
	return n
}

func appendBase64(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string: as it is when it holds
// only printable ASCII that needs no escape (a well-formed ciphertext),
// else as encoding/json quotes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// rawWriter is a Vault client that takes a request body already encoded
// as JSON and returns the answer as it came (vaultclient.Client). A
// Logical without it gets generic maps.
type rawWriter interface {
	WriteRaw(ctx context.Context, path string, body []byte) ([]byte, error)
}

// write sends one batch_input call of in to path and returns its
// batch_results (as many as Vault sent; call checks the count).
func (c *Client) write(ctx context.Context, path string, in []entry) ([]result, error) {
	if rw, ok := c.v.(rawWriter); ok {
		answer, err := rw.WriteRaw(ctx, path, appendBatchBody(make([]byte, 0, batchBodySize(in)), in))
		if err != nil {
			return nil, err
		}
		res, ok := parseBatchAnswer(answer, len(in))
		if !ok {
			return nil, fmt.Errorf("write %s: decode response: %w", path, vaultclient.ErrUnavailable)
		}
		return res, nil
	}
	maps := make([]map[string]any, len(in))
	for i := range in {
		maps[i] = in[i].asMap()
	}
	data, err := c.v.Write(ctx, path, map[string]any{
		"batch_input":                   maps,
		"partial_failure_response_code": 207,
	})
	if err != nil {
		return nil, err
	}
	raw, _ := data["batch_results"].([]any)
	res := make([]result, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		if m == nil {
			res[i].Error = emptyResult
			continue
		}
		res[i] = result{Ciphertext: str(m["ciphertext"]), Plaintext: str(m["plaintext"]), HMAC: str(m["hmac"]), Error: str(m["error"])}
	}
	return res, nil
}
