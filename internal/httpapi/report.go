package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/kafkagate/kafkagate/internal/protect"
)

// Produce reports written by appending: the same bytes encoding/json gives
// for a produceResponse (escaping HTML off), without reflection or an
// allocation per report.

// reportBufs holds the buffers a produce stream encodes a batch's reports
// into.
var reportBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// appendReportLine appends o's JSON and CRLF to b.
func appendReportLine(b []byte, o *produceResponse) []byte {
	if o.Timestamp != nil && (o.Timestamp.Year() < 0 || o.Timestamp.Year() > 9999) {
		// time.Time refuses to encode such a year; keep encoding/json's
		// behaviour for it.
		return append(b, reportLine(*o)...)
	}
	b = append(b, `{"error_code":`...)
	b = strconv.AppendInt(b, int64(o.ErrorCode), 10)
	b = appendStringField(b, `,"message":`, o.Message)
	b = appendStringField(b, `,"cluster_id":`, o.ClusterID)
	b = appendStringField(b, `,"topic_name":`, o.TopicName)
	if o.PartitionID != nil {
		b = append(b, `,"partition_id":`...)
		b = strconv.AppendInt(b, int64(*o.PartitionID), 10)
	}
	if o.Offset != nil {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, *o.Offset, 10)
	}
	if o.Timestamp != nil {
		b = append(b, `,"timestamp":`...)
		b = o.Timestamp.AppendFormat(append(b, '"'), "2006-01-02T15:04:05.999999999Z07:00")
		b = append(b, '"')
	}
	b = appendSizeInfo(b, `,"key":`, o.Key)
	b = appendSizeInfo(b, `,"value":`, o.Value)
	if e := o.Encryption; e != nil {
		b = append(b, `,"encryption":{"policy":`...)
		b = appendReportString(b, e.Policy)
		b = append(b, `,"fields":`...)
		if e.Fields == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i := range e.Fields {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendFieldInfo(b, &e.Fields[i])
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = appendStringField(b, `,"field":`, o.Field)
	return append(b, "}\r\n"...)
}

func appendFieldInfo(b []byte, f *protect.FieldInfo) []byte {
	b = append(b, `{"path":`...)
	b = appendReportString(b, f.Path)
	b = append(b, `,"mode":`...)
	b = appendReportString(b, f.Mode)
	b = appendStringField(b, `,"key":`, f.Key)
	if f.KeyVersion != 0 {
		b = append(b, `,"key_version":`...)
		b = strconv.AppendInt(b, int64(f.KeyVersion), 10)
	}
	b = appendStringField(b, `,"domain":`, f.Domain)
	b = appendStringField(b, `,"format":`, f.Format)
	if f.Bound {
		b = append(b, `,"bound":true`...)
	}
	return append(b, '}')
}

func appendSizeInfo(b []byte, name string, s *sizeInfo) []byte {
	if s == nil {
		return b
	}
	b = append(b, name...)
	b = append(b, `{"type":`...)
	b = appendReportString(b, s.Type)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, int64(s.Size), 10)
	return append(b, '}')
}

// appendStringField appends name and s unless s is empty (omitempty).
func appendStringField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendReportString(append(b, name...), s)
}

// appendReportString appends s as a JSON string: as it is when it holds
// only printable ASCII other than '"' and '\', else as encoding/json
// quotes it with HTML escaping off.
func appendReportString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
