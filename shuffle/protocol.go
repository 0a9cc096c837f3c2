package shuffle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The shuffle service protocol: one request, one response, repeated on a
// connection for as long as both sides keep it open (keep-alive). Integers
// are big-endian.
//
// Request (client to server):
//
//	magic     [4]byte "SHF2"
//	op        uint8   opSegment (1) or opSegmentInfos (2)
//	jobLen    uint8   1..MaxJobIDLen
//	job       [jobLen]byte  a job id that ValidJobID accepts
//	partition uint32  reduce partition, 0..maxPartitions-1
//	op 1, one segment's bytes:
//	  output  outputID
//	  offset  int64   first byte of the segment to send, 0..segment length
//	op 2, the SegmentInfo of several outputs' segment of the partition:
//	  count   uint16  1..MaxSegmentInfos
//	  count × outputID
//	outputID = kind uint8 (KindMap, KindMerge) · index uint32
//	           (0..MaxOutputIndex) · attempt uint16 (1..MaxAttempt)
//
// Response (server to client):
//
//	status    uint8   statusOK, or one of the error statuses below
//	if statusOK, op 1:
//	  length  int64   the segment's total length, from the index
//	  crc     uint32  CRC32C of the whole segment, from the index
//	  then length-offset bytes: the segment from offset to its end
//	if statusOK, op 2:
//	  count   uint16  as in the request
//	  count × { status uint8; offset int64; length int64; crc uint32 }
//	          in request order; status is statusOK or the error status
//	          of that output (offset, length and crc are then zero)
//	otherwise:
//	  msgLen  uint16
//	  msg     [msgLen]byte  what went wrong, for the reduce's error
//
// A request whose frame cannot be read (bad magic, unknown op, job length 0
// or over the limit, count 0 or over the limit) gets a statusBadRequest
// response and the server closes the connection, since it can no longer
// find the next request. Every other request, good or bad, leaves the
// connection open for the next one, unless sending the segment failed
// midway (the client then resumes from the bytes it got, on a new
// connection).
const (
	protoMagic = "SHF2"

	opSegment      byte = 1
	opSegmentInfos byte = 2

	// MaxJobIDLen bounds the length of a job id in bytes.
	MaxJobIDLen = 128
	// MaxSegmentInfos bounds the outputs one segment-info request names.
	MaxSegmentInfos = 4096

	reqHeadSize   = 4 + 1 + 1 // magic, op, jobLen
	outputIDSize  = 1 + 4 + 2 // kind, index, attempt
	segBodySize   = 4 + outputIDSize + 8
	infoEntrySize = 1 + 8 + 8 + 4 // status, offset, length, crc
	// maxRequestSize is the largest request frame.
	maxRequestSize = reqHeadSize + MaxJobIDLen + 4 + 2 + MaxSegmentInfos*outputIDSize
	// maxMsgLen bounds an error message in a response.
	maxMsgLen = 1024
)

// Response statuses.
const (
	statusOK         byte = 0
	statusNotFound   byte = 1 // no such job or output on this node
	statusBadRequest byte = 2 // a request field is invalid
	statusCorrupt    byte = 3 // the output's index or data file is damaged
	statusFailed     byte = 4 // an I/O error on the server; worth retrying
)

// ErrMapOutputNotFound reports that the shuffle service does not have the
// output a reduce asked for (the job or output is unknown to it, or the
// output was deleted): the task that wrote it must be re-run.
var ErrMapOutputNotFound = errors.New("map output not found")

// requestError is a request the server refuses. With frame set the request
// could not be parsed at all, so the stream is out of step and the
// connection must be closed after the response.
type requestError struct {
	frame bool
	msg   string
}

func (e *requestError) Error() string { return "bad request: " + e.msg }

func badFrame(format string, args ...any) error {
	return &requestError{frame: true, msg: fmt.Sprintf(format, args...)}
}

func badField(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// request is one decoded, validated request.
type request struct {
	op        byte
	job       string
	partition int
	id        OutputID   // opSegment
	offset    int64      // opSegment
	ids       []OutputID // opSegmentInfos
}

// ValidJobID reports whether a job id may be named in a shuffle request: 1 to
// MaxJobIDLen bytes of ASCII letters, digits, '.', '_' and '-', not starting
// with '.'. Such an id is safe to use as a file name: it holds no path
// separator and is neither "." nor "..".
func ValidJobID(job string) error {
	if msg := checkJobID(job); msg != "" {
		return errors.New("shuffle: " + msg)
	}
	return nil
}

// checkJobID returns what is wrong with a job id, or "".
func checkJobID(job string) string {
	if len(job) == 0 || len(job) > MaxJobIDLen {
		return fmt.Sprintf("job id of %d bytes: want 1 to %d", len(job), MaxJobIDLen)
	}
	if job[0] == '.' {
		return fmt.Sprintf("job id %q starts with '.'", job)
	}
	for i := 0; i < len(job); i++ {
		c := job[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Sprintf("job id %q has the character %q at byte %d: only letters, digits, '.', '_' and '-' are allowed", job, c, i)
	}
	return ""
}

// appendRequest encodes a request. It does not validate it; fields out of
// their wire range are cut to it.
func appendRequest(b []byte, r request) []byte {
	b = append(b, protoMagic...)
	b = append(b, r.op, byte(len(r.job)))
	b = append(b, r.job...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.partition))
	if r.op == opSegmentInfos {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.ids)))
		for _, id := range r.ids {
			b = appendOutputID(b, id)
		}
		return b
	}
	b = appendOutputID(b, r.id)
	return binary.BigEndian.AppendUint64(b, uint64(r.offset))
}

func appendOutputID(b []byte, id OutputID) []byte {
	b = append(b, byte(id.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(id.Index))
	return binary.BigEndian.AppendUint16(b, uint16(id.Attempt))
}

func decodeOutputID(b []byte) OutputID {
	return OutputID{Kind: OutputKind(b[0]), Index: int(binary.BigEndian.Uint32(b[1:])), Attempt: int(binary.BigEndian.Uint16(b[5:]))}
}

// readRequest reads one request frame from rd, into *buf (grown as needed
// up to maxRequestSize), and validates its fields. It returns a
// *requestError for a request the server must refuse, io.EOF when the client
// closed the connection between requests, and any other read error as is.
func readRequest(rd io.Reader, buf *[]byte) (request, error) {
	if cap(*buf) < reqHeadSize+MaxJobIDLen+segBodySize {
		*buf = make([]byte, reqHeadSize+MaxJobIDLen+segBodySize)
	}
	b := (*buf)[:cap(*buf)]
	head := b[:reqHeadSize]
	if _, err := io.ReadFull(rd, head); err != nil {
		return request{}, err // io.EOF when nothing was read: a clean close
	}
	if string(head[:4]) != protoMagic {
		return request{}, badFrame("magic %q, want %q", head[:4], protoMagic)
	}
	op := head[4]
	if op != opSegment && op != opSegmentInfos {
		return request{}, badFrame("unknown op %d: want %d (segment) or %d (segment infos)", op, opSegment, opSegmentInfos)
	}
	n := int(head[5])
	if n == 0 || n > MaxJobIDLen {
		return request{}, badFrame("job id length %d, want 1 to %d", n, MaxJobIDLen)
	}
	fixed := segBodySize
	if op == opSegmentInfos {
		fixed = 4 + 2
	}
	body := b[reqHeadSize : reqHeadSize+n+fixed]
	if _, err := io.ReadFull(rd, body); err != nil {
		return request{}, noEOF(err)
	}
	req := request{op: op, job: string(body[:n])}
	rest := body[n:]
	part := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	var msg string
	if op == opSegmentInfos {
		count := int(binary.BigEndian.Uint16(rest))
		if count == 0 || count > MaxSegmentInfos {
			return request{}, badFrame("%d outputs in a segment-info request, want 1 to %d", count, MaxSegmentInfos)
		}
		if need := reqHeadSize + n + fixed + count*outputIDSize; cap(*buf) < need {
			nb := make([]byte, maxRequestSize)
			copy(nb, b[:reqHeadSize+n+fixed])
			*buf, b = nb, nb
		}
		list := b[reqHeadSize+n+fixed : reqHeadSize+n+fixed+count*outputIDSize]
		if _, err := io.ReadFull(rd, list); err != nil {
			return request{}, noEOF(err)
		}
		req.ids = make([]OutputID, count)
		for i := range req.ids {
			req.ids[i] = decodeOutputID(list[i*outputIDSize:])
			if m := req.ids[i].check(); m != "" && msg == "" {
				msg = fmt.Sprintf("output %d of %d (%s): %s", i, count, req.ids[i], m)
			}
		}
	} else {
		req.id = decodeOutputID(rest)
		req.offset = int64(binary.BigEndian.Uint64(rest[outputIDSize:]))
		if m := req.id.check(); m != "" {
			msg = fmt.Sprintf("output %s: %s", req.id, m)
		}
	}
	if m := checkJobID(req.job); m != "" {
		return request{}, badField("%s", m)
	}
	if msg != "" {
		return request{}, badField("%s", msg)
	}
	if part >= maxPartitions {
		return request{}, badField("partition %d out of range 0..%d", part, maxPartitions-1)
	}
	req.partition = int(part)
	if req.offset < 0 {
		return request{}, badField("negative offset %d", req.offset)
	}
	return req, nil
}

// appendOK encodes the head of a successful response.
func appendOK(b []byte, seg SegmentInfo) []byte {
	b = append(b, statusOK)
	b = binary.BigEndian.AppendUint64(b, uint64(seg.Length))
	return binary.BigEndian.AppendUint32(b, seg.CRC)
}

// appendError encodes an error response, cutting msg to maxMsgLen bytes.
func appendError(b []byte, status byte, msg string) []byte {
	if len(msg) > maxMsgLen {
		msg = msg[:maxMsgLen]
	}
	b = append(b, status)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// appendInfos encodes the response to a segment-info request.
func appendInfos(b []byte, infos []SegmentInfo, statuses []byte) []byte {
	b = append(b, statusOK)
	b = binary.BigEndian.AppendUint16(b, uint16(len(infos)))
	for i, seg := range infos {
		b = append(b, statuses[i])
		b = binary.BigEndian.AppendUint64(b, uint64(seg.Offset))
		b = binary.BigEndian.AppendUint64(b, uint64(seg.Length))
		b = binary.BigEndian.AppendUint32(b, seg.CRC)
	}
	return b
}
