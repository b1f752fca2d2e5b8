// Package views prints what the showcase (`gateway demo`) shows for each
// record: the record as the broker's operator sees it (the stored value,
// with long ciphertexts shortened, its kafkagate headers and the key
// versions that protect it) next to what an authorised consumer gets back
// through kafkagate.
package views

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/kafkagate/kafkagate/internal/kafka"
	"github.com/kafkagate/kafkagate/internal/ui/inspect"
)

// Section prints a demo's title.
func Section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n=== %s %s\n", title, strings.Repeat("=", max(3, 74-len(title))))
}

// Record prints one record: the admin's view, then the consumer's (a
// decrypted value and its status; status "" prints the value alone).
func Record(w io.Writer, r kafka.Record, consumerValue []byte, status string) {
	s := inspect.Describe(r, 0)
	key := "null"
	if s.Key != nil {
		key = *s.Key
	}
	fmt.Fprintf(w, "%s/%d@%d  key=%s\n", r.Topic, r.Partition, r.Offset, key)
	fmt.Fprintf(w, "  broker admin sees  %s\n", Abbrev(r.Value, 120))
	if ks := Keys(s.Keys); ks != "" {
		fmt.Fprintf(w, "                     keys: %s\n", ks)
	}
	if hs := HeaderNames(s.Headers); hs != "" {
		fmt.Fprintf(w, "                     headers: %s\n", hs)
	}
	label := "  consumer sees      "
	if status != "" {
		fmt.Fprintf(w, "%s%s  [%s]\n", label, consumerValue, status)
		return
	}
	fmt.Fprintf(w, "%s%s\n", label, consumerValue)
}

// Keys renders key uses as "Name transit kafka-x v1, credit_card fpe
// payments.card_number v1".
func Keys(ks []inspect.KeyUse) string {
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		name := k.Key
		if k.Domain != "" {
			name = k.Domain
		}
		p := k.Mode + " " + name + " " + version(k.Version)
		if k.Field != "" {
			p = k.Field + " " + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func version(v int) string {
	if v == 0 {
		return "v?"
	}
	return fmt.Sprintf("v%d", v)
}

// HeaderNames lists header names; kafkagate.edek and kafkagate.fields get
// a short form of their value.
func HeaderNames(hs []inspect.HeaderView) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		switch h.Name {
		case "kafkagate.format", "kafkagate.kek", "kafkagate.chunk", "kafkagate.last", "kafkagate.source":
			parts = append(parts, h.Name+"="+h.Value)
		case "kafkagate.edek":
			parts = append(parts, h.Name+"="+shorten(h.Value, 20))
		default:
			parts = append(parts, h.Name)
		}
	}
	return strings.Join(parts, ", ")
}

// Abbrev renders a stored value on one line: a JSON object with each long
// string shortened (transit ciphertexts keep their vault:vN: prefix), text
// cut at limit bytes, binary as its size and first bytes in hex.
func Abbrev(v []byte, limit int) string {
	if v == nil {
		return "null"
	}
	if out, ok := abbrevObject(v); ok {
		return out
	}
	if s, bin := textOf(v); !bin {
		return shorten(s, limit)
	}
	n := min(len(v), 16)
	return fmt.Sprintf("(%d bytes of ciphertext: %s…)", len(v), hex.EncodeToString(v[:n]))
}

// abbrevObject shortens the transit ciphertext members of a JSON object,
// keeping their order.
func abbrevObject(v []byte) (string, bool) {
	d := json.NewDecoder(bytes.NewReader(v))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; d.More(); i++ {
		t, err := d.Token()
		k, ok := t.(string)
		if err != nil || !ok {
			return "", false
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		var s string
		if json.Unmarshal(raw, &s) == nil && strings.HasPrefix(s, "vault:v") {
			// A transit ciphertext: its prefix says enough. Other values are
			// shown whole: what the admin sees in clear must be visible as
			// such (and compare equal to the consumer's view in demo 1).
			sb, _ := json.Marshal(shorten(s, 24))
			b.Write(sb)
		} else {
			b.Write(raw)
		}
	}
	b.WriteByte('}')
	return b.String(), true
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func textOf(v []byte) (string, bool) {
	d := inspect.Describe(kafka.Record{Value: v}, 0)
	return *d.Value, d.ValueBinary
}
