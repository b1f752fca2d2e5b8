package protect

import (
	"context"

	"github.com/kafkagate/kafkagate/internal/kms"

	"github.com/kafkagate/kafkagate/internal/record"
)

// HeaderSealed marks a value sealed whole with Vault transit (dead-letter
// records): the value is the ciphertext "vault:vN:...", bound to the topic
// it is written to. The header's JSON names the key: {"v":1,"k":"<key>"}.
const HeaderSealed = record.HeaderSealed

// sealedPath is the AAD path of a whole sealed value.
const sealedPath = "\x00value"

// SealValues encrypts whole values with transit key for topic, in one
// batch. Each output has its value and the header to send with it. A
// per-item failure is returned as that item's error; the error result
// means nothing was sealed.
func (e *Engine) SealValues(ctx context.Context, key, topic string, values [][]byte) ([]Sealed, error) {
	items := make([]kms.Item, len(values))
	for i, v := range values {
		items[i] = kms.Item{Plaintext: v, AAD: AAD(topic, sealedPath)}
	}
	res, err := e.transit.Encrypt(ctx, key, items)
	if err != nil {
		return nil, err
	}
	h := record.SealedWith(key)
	out := make([]Sealed, len(values))
	for i, r := range res {
		if r.Err != nil {
			out[i].Err = &Error{Code: CodeEncryptFailed, Msg: "vault refused to seal the value", Err: r.Err}
			continue
		}
		out[i] = Sealed{Value: []byte(r.Ciphertext), Headers: []Header{{Key: HeaderSealed, Value: h}},
			Fields: []FieldInfo{{Path: "", Mode: "sealed", Key: key, KeyVersion: r.KeyVersion}}}
	}
	return out, nil
}
