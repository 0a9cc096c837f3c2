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
// Request (client to server), 30 to 157 bytes:
//
//	magic     [4]byte "SHF1"
//	jobLen    uint8   1..MaxJobIDLen
//	job       [jobLen]byte  a job id that ValidJobID accepts
//	map       int64   map task id, 0..maxMapID
//	partition int64   reduce partition, 0..maxPartitions-1
//	offset    int64   first byte of the segment to send, 0..segment length
//
// Response (server to client):
//
//	status    uint8   statusOK, or one of the error statuses below
//	if statusOK:
//	  length  int64   the segment's total length, from the index
//	  crc     uint32  CRC32C of the whole segment, from the index
//	  then length-offset bytes: the segment from offset to its end
//	otherwise:
//	  msgLen  uint16
//	  msg     [msgLen]byte  what went wrong, for the reduce's error
//
// A request whose frame cannot be read (bad magic, job length 0 or over the
// limit) gets a statusBadRequest response and the server closes the
// connection, since it can no longer find the next request. Every other
// request, good or bad, leaves the connection open for the next one, unless
// sending the segment failed midway (the client then resumes from the bytes
// it got, on a new connection).
const (
	protoMagic = "SHF1"

	// MaxJobIDLen bounds the length of a job id in bytes.
	MaxJobIDLen = 128
	// maxMapID bounds the map task ids a request may name.
	maxMapID = 1<<31 - 1

	reqFixedSize = 4 + 1 + 3*8
	// maxMsgLen bounds an error message in a response.
	maxMsgLen = 1024
)

// Response statuses.
const (
	statusOK         byte = 0
	statusNotFound   byte = 1 // no such job or map output on this node
	statusBadRequest byte = 2 // a request field is invalid
	statusCorrupt    byte = 3 // the map output's index or data file is damaged
	statusFailed     byte = 4 // an I/O error on the server; worth retrying
)

// ErrMapOutputNotFound reports that the shuffle service does not have the
// map output a reduce asked for (the job or map task is unknown to it, or the
// output was deleted): the map task must be re-run.
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
	job       string
	mapID     int
	partition int
	offset    int64
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

// appendRequest encodes a request. It does not validate it.
func appendRequest(b []byte, r request) []byte {
	b = append(b, protoMagic...)
	b = append(b, byte(len(r.job)))
	b = append(b, r.job...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.mapID))
	b = binary.BigEndian.AppendUint64(b, uint64(r.partition))
	return binary.BigEndian.AppendUint64(b, uint64(r.offset))
}

// readRequest reads one request frame from rd into buf (which must hold
// reqFixedSize+MaxJobIDLen bytes) and validates its fields. It returns a
// *requestError for a request the server must refuse, io.EOF when the client
// closed the connection between requests, and any other read error as is.
func readRequest(rd io.Reader, buf []byte) (request, error) {
	head := buf[:5]
	if _, err := io.ReadFull(rd, head); err != nil {
		return request{}, err // io.EOF when nothing was read: a clean close
	}
	if string(head[:4]) != protoMagic {
		return request{}, badFrame("magic %q, want %q", head[:4], protoMagic)
	}
	n := int(head[4])
	if n == 0 || n > MaxJobIDLen {
		return request{}, badFrame("job id length %d, want 1 to %d", n, MaxJobIDLen)
	}
	body := buf[5 : 5+n+24]
	if _, err := io.ReadFull(rd, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return request{}, err
	}
	job := string(body[:n])
	mapID := int64(binary.BigEndian.Uint64(body[n:]))
	part := int64(binary.BigEndian.Uint64(body[n+8:]))
	off := int64(binary.BigEndian.Uint64(body[n+16:]))
	if msg := checkJobID(job); msg != "" {
		return request{}, badField("%s", msg)
	}
	if mapID < 0 || mapID > maxMapID {
		return request{}, badField("map id %d out of range 0..%d", mapID, maxMapID)
	}
	if part < 0 || part >= maxPartitions {
		return request{}, badField("partition %d out of range 0..%d", part, maxPartitions-1)
	}
	if off < 0 {
		return request{}, badField("negative offset %d", off)
	}
	return request{job: job, mapID: int(mapID), partition: int(part), offset: off}, nil
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
