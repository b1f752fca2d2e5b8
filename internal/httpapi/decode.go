package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// decodeRecordFast reads one produce record object in a single pass over
// raw, which must be valid JSON (frameRecord checks it). It handles the
// shapes clients send: the known fields, each at most once, spelt exactly,
// strings without escapes. It reports false for anything else (an unknown,
// repeated or differently cased field, a wrong type, an escape in a
// string, a null where an object is expected), and the caller decodes
// with decodeRecord, whose result and error messages stay the reference:
// wherever this reports true, decodeRecord gives the same record
// (FuzzProduceBody checks it).
func decodeRecordFast(raw []byte) (produceRequest, bool) {
	var req produceRequest
	var seen uint8
	ok := true
	gjson.ParseBytes(raw).ForEach(func(k, v gjson.Result) bool {
		var bit uint8
		switch plainKey(k) {
		case "partition_id":
			bit = 1
			if v.Type != gjson.Null {
				n, err := strconv.ParseInt(v.Raw, 10, 32)
				if v.Type != gjson.Number || err != nil {
					ok = false
					break
				}
				p := int32(n)
				req.PartitionID = &p
			}
		case "headers":
			bit = 2
			if v.Type != gjson.Null {
				req.Headers, ok = decodeHeadersFast(v)
			}
		case "key":
			bit = 4
			req.Key, ok = decodeDataFast(v)
		case "value":
			bit = 8
			req.Value, ok = decodeDataFast(v)
		case "timestamp":
			bit = 16
			if v.Type != gjson.Null {
				var ts time.Time
				if v.Type != gjson.String || ts.UnmarshalJSON([]byte(v.Raw)) != nil {
					ok = false
					break
				}
				req.Timestamp = &ts
			}
		default:
			ok = false
		}
		ok = ok && once(&seen, bit)
		return ok
	})
	return req, ok
}

// once marks bit in seen and reports whether it was not yet set (a field
// met for the first time).
func once(seen *uint8, bit uint8) bool {
	first := *seen&bit == 0
	*seen |= bit
	return first
}

// plainKey is an object key without escapes, or "" (never a known field).
func plainKey(k gjson.Result) string {
	if strings.IndexByte(k.Raw, '\\') >= 0 {
		return ""
	}
	return k.Str
}

// plainString is a JSON string value without escapes, in valid UTF-8
// (encoding/json would replace invalid bytes).
func plainString(v gjson.Result) (string, bool) {
	if v.Type != gjson.String || strings.IndexByte(v.Raw, '\\') >= 0 || !utf8.ValidString(v.Raw) {
		return "", false
	}
	return v.Str, true
}

func decodeHeadersFast(v gjson.Result) ([]requestHeader, bool) {
	if !v.IsArray() {
		return nil, false
	}
	hs := make([]requestHeader, 0, 4)
	ok := true
	v.ForEach(func(_, h gjson.Result) bool {
		if !h.IsObject() {
			ok = false
			return false
		}
		var rh requestHeader
		var seen uint8
		h.ForEach(func(k, f gjson.Result) bool {
			var bit uint8
			switch plainKey(k) {
			case "name":
				bit = 1
				rh.Name, ok = plainString(f)
			case "value":
				bit = 2
				if f.Type != gjson.Null {
					var s string
					if s, ok = plainString(f); ok {
						rh.Value = &s
					}
				}
			default:
				ok = false
			}
			ok = ok && once(&seen, bit)
			return ok
		})
		hs = append(hs, rh)
		return ok
	})
	return hs, ok
}

// decodeDataFast reads a key or value object; JSON null is nil.
func decodeDataFast(v gjson.Result) (*requestData, bool) {
	if v.Type == gjson.Null {
		return nil, true
	}
	if !v.IsObject() {
		return nil, false
	}
	d := &requestData{}
	var seen uint8
	ok := true
	v.ForEach(func(k, f gjson.Result) bool {
		var bit uint8
		var dst *json.RawMessage
		switch plainKey(k) {
		case "type":
			bit = 1
			d.Type, ok = plainString(f)
		case "data":
			bit, dst = 2, &d.Data
		case "subject":
			bit, dst = 4, &d.Subject
		case "subject_name_strategy":
			bit, dst = 8, &d.SubjectNameStrategy
		case "schema_id":
			bit, dst = 16, &d.SchemaID
		case "schema_version":
			bit, dst = 32, &d.SchemaVersion
		case "schema":
			bit, dst = 64, &d.Schema
		default:
			ok = false
		}
		if dst != nil {
			*dst = json.RawMessage(f.Raw)
		}
		ok = ok && once(&seen, bit)
		return ok
	})
	return d, ok
}
