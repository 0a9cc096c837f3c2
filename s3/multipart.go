package s3

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Multipart uploads live in ROOT/.engine-s3/uploads/UPLOADID: upload.json
// (bucket, key, metadata) and one file per part, named by its number,
// written through the burst buffer like any object.

const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
)

type uploadInfo struct {
	Bucket    string     `json:"bucket"`
	Key       string     `json:"key"`
	Initiated int64      `json:"initiated"`
	Meta      objectMeta `json:"meta"`
	Owner     string     `json:"owner"`
}

// partMeta is kept in a part file's xattr.
type partMeta struct {
	ETag string `json:"etag"`
	Size int64  `json:"s"`
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// loadUpload reads the upload uploadID of bucket/key.
func (st *store) loadUpload(bucket, key, id string) (*uploadInfo, string, error) {
	noUpload := errorf("NoSuchUpload", "the upload %q does not exist: it was completed or aborted, or never started", id)
	if !validUploadID(id) {
		return nil, "", noUpload
	}
	dir := st.uploads + "/" + id
	b, err := st.readUploadRecord(dir)
	if err != nil {
		return nil, "", noUpload
	}
	var u uploadInfo
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, "", fmt.Errorf("s3: upload %s: %w", id, err)
	}
	if u.Bucket != bucket || u.Key != key {
		return nil, "", noUpload
	}
	return &u, dir, nil
}

// uploadsOf lists the upload ids of bucket.
func (st *store) uploadsOf(bucket string) []string {
	ents, _ := st.fs.ReadDir(st.uploads)
	var out []string
	for _, e := range ents {
		b, err := st.readUploadRecord(st.uploads + "/" + e.Name())
		if err != nil {
			continue
		}
		var u uploadInfo
		if json.Unmarshal(b, &u) == nil && u.Bucket == bucket {
			out = append(out, e.Name())
		}
	}
	return out
}

// readUploadRecord reads the upload.json of the upload directory dir
// (a regular file of at most 64 KiB: metadata is bounded far below).
func (st *store) readUploadRecord(dir string) ([]byte, error) {
	f, fi, err := st.fs.OpenRegular(dir, "upload.json")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, 0, min(fi.Size(), 64<<10)))
}

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

// createUpload serves POST /bucket/key?uploads.
func (s *Server) createUpload(r *request) error {
	if _, err := s.st.checkBucket(r.bucket); err != nil {
		return err
	}
	if _, err := keyPath(r.key); err != nil {
		return err
	}
	if strings.HasSuffix(r.key, dirObjSuffix) {
		return errorf("InvalidArgument", "a key ending in '/' names a directory of the namespace: it can only be put empty")
	}
	meta, err := metaFromRequest(&r.ctx.Request.Header)
	if err != nil {
		return err
	}
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	dir := s.st.uploads + "/" + id
	if err := s.st.fs.Mkdir(dir, internalMode); err != nil {
		return err
	}
	info, _ := json.Marshal(uploadInfo{Bucket: r.bucket, Key: r.key, Initiated: s.cfg.Now().UnixNano(), Meta: *meta, Owner: r.auth.AccessKey})
	err = s.st.writeFileSync(dir+"/upload.json", info)
	if err == nil {
		// The upload's directory is named durably too: its parts are
		// acknowledged into it.
		err = s.st.fs.SyncDir(s.st.uploads)
	}
	if err != nil {
		s.st.fs.RemoveAll(dir)
		return err
	}
	return writeXML(r.ctx, initiateResult{Xmlns: s3NS, Bucket: r.bucket, Key: r.key, UploadID: id})
}

// writeFileSync writes the new small file p durably (file and
// directory).
func (st *store) writeFileSync(p string, b []byte) error {
	f, err := st.fs.Create(p, privateMode)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return st.fs.SyncDir(path.Dir(p))
}

func partName(n int) string { return fmt.Sprintf("%05d", n) }

type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	Xmlns        string   `xml:"xmlns,attr"`
	LastModified string   `xml:"LastModified"`
	ETag         string   `xml:"ETag"`
}

// uploadPart serves PUT /bucket/key?partNumber=N&uploadId=ID, and
// UploadPartCopy when x-amz-copy-source is set.
func (s *Server) uploadPart(r *request) error {
	if _, err := s.st.checkBucket(r.bucket); err != nil {
		return err
	}
	id := r.query.Get("uploadId")
	n, err := strconv.Atoi(r.query.Get("partNumber"))
	if err != nil || n < 1 || n > maxParts {
		return errorf("InvalidArgument", "partNumber must be an integer from 1 to %d", maxParts)
	}
	_, dir, err := s.st.loadUpload(r.bucket, r.key, id)
	if err != nil {
		return err
	}
	u, err := s.st.newUploadIn(r.ctx, dir)
	if err != nil {
		return err
	}
	defer u.abort()
	h := &r.ctx.Request.Header
	copying := len(h.Peek("x-amz-copy-source")) > 0
	if copying {
		src, err := s.openCopySource(r)
		if err != nil {
			return err
		}
		defer src.Close()
		start, length := int64(0), src.size
		if rg := string(h.Peek("x-amz-copy-source-range")); rg != "" {
			st, ln, ok, err := parseRange(rg, src.size)
			if err != nil || !ok || strings.Contains(rg, "=-") || strings.HasSuffix(rg, "-") {
				return errorf("InvalidArgument", "x-amz-copy-source-range %q must be bytes=FIRST-LAST within the %d-byte source", rg, src.size)
			}
			start, length = st, ln
		}
		if length > maxPartSize {
			return errorf("EntityTooLarge", "a part is limited to 5 GiB")
		}
		if err := u.copyFrom(src.reader(r.ctx, start, length)); err != nil {
			return err
		}
	} else {
		p, err := openPayload(r)
		if err != nil {
			return err
		}
		if p.size > maxPartSize {
			return errorf("EntityTooLarge", "a part is limited to 5 GiB")
		}
		if err := u.copyFrom(p.r, p.hashes()...); err != nil {
			return bodyError(err)
		}
		if _, err := p.check(u.size, u.md5.Sum(nil)); err != nil {
			return err
		}
	}
	etag, err := u.commitPart(r.ctx, dir, partName(n))
	if err != nil {
		return err
	}
	if copying {
		return writeXML(r.ctx, copyPartResult{Xmlns: s3NS, ETag: `"` + etag + `"`, LastModified: isoTime(s.cfg.Now())})
	}
	r.ctx.Response.Header.Set("ETag", `"`+etag+`"`)
	return nil
}

// newUploadIn is newUpload with the temporary file in dir.
func (st *store) newUploadIn(ctx context.Context, dir string) (*upload, error) {
	u, err := st.newUpload(ctx)
	if err != nil {
		return nil, err
	}
	// Move the fresh (empty) file next to the part it becomes: a rename
	// within the upload directory then commits it.
	name := dir + "/.tmp-" + path.Base(u.name)
	if err := st.fs.Rename(u.name, name); err != nil {
		u.abort()
		return nil, err
	}
	u.name = name
	return u, nil
}

// commitPart makes the part durable and names it.
func (u *upload) commitPart(ctx context.Context, dir, name string) (string, error) {
	defer u.abort()
	if err := u.st.data.Sync(ctx, u.f); err != nil {
		return "", err
	}
	etag := hex.EncodeToString(u.md5.Sum(nil))
	b, _ := json.Marshal(partMeta{ETag: etag, Size: u.size})
	if err := u.f.SetXattr(metaXattr, b); err != nil {
		return "", err
	}
	if err := u.f.Sync(); err != nil {
		return "", err
	}
	if err := u.st.fs.Rename(u.name, dir+"/"+name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errorf("NoSuchUpload", "the upload was completed or aborted while the part was being uploaded")
		}
		return "", err
	}
	u.done = true
	u.f.Close()
	return etag, u.st.fs.SyncDir(dir)
}

type partInfo struct {
	Number int
	ETag   string
	Size   int64
	MTime  time.Time
}

// parts lists the parts of the upload in dir, by number.
func (st *store) parts(dir string) ([]partInfo, error) {
	ents, err := st.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []partInfo
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || e.Name() != partName(n) {
			continue
		}
		f, _, err := st.fs.OpenRegular(dir, e.Name())
		if err != nil {
			continue
		}
		b, err := f.GetXattr(metaXattr)
		f.Close()
		if err != nil {
			continue
		}
		var pm partMeta
		if json.Unmarshal(b, &pm) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, partInfo{Number: n, ETag: pm.ETag, Size: pm.Size, MTime: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

type completeRequest struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	Xmlns    string   `xml:"xmlns,attr"`
	Location string   `xml:"Location"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	ETag     string   `xml:"ETag"`
}

// completeUpload serves POST /bucket/key?uploadId=ID: the parts named are
// joined, in order, into the object (read and written through the burst
// buffer), which replaces any object of that key atomically.
func (s *Server) completeUpload(r *request) error {
	bdir, err := s.st.checkBucket(r.bucket)
	if err != nil {
		return err
	}
	id := r.query.Get("uploadId")
	info, dir, err := s.st.loadUpload(r.bucket, r.key, id)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := readXML(r, 4<<20, &req); err != nil {
		return err
	}
	if len(req.Parts) == 0 {
		return errorf("MalformedXML", "the CompleteMultipartUpload names no part")
	}
	have, err := s.st.parts(dir)
	if err != nil {
		return err
	}
	byNum := map[int]partInfo{}
	for _, p := range have {
		byNum[p.Number] = p
	}
	rel, err := keyPath(r.key)
	if err != nil {
		return err
	}
	var chosen []partInfo
	for i, p := range req.Parts {
		if i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber {
			return errorf("InvalidPartOrder", "the parts must be listed in ascending order of part number")
		}
		got, ok := byNum[p.PartNumber]
		if !ok || strings.Trim(p.ETag, `" `) != got.ETag {
			return errorf("InvalidPart", "part %d was not uploaded, or its ETag is not %s", p.PartNumber, p.ETag)
		}
		chosen = append(chosen, got)
	}
	for i, p := range chosen[:len(chosen)-1] {
		if p.Size < minPartSize {
			return errorf("EntityTooSmall", "part %d (number %d) is %d bytes: every part but the last must be at least 5 MiB", i+1, p.Number, p.Size)
		}
	}
	u, err := s.st.newUpload(r.ctx)
	if err != nil {
		return err
	}
	defer u.abort()
	sums := md5.New()
	var sizes []int64
	for _, p := range chosen {
		o, _, err := s.st.openRaw(dir, partName(p.Number))
		if err != nil {
			return err
		}
		err = u.copyFrom(o.reader(r.ctx, 0, p.Size))
		o.Close()
		if err != nil {
			return err
		}
		b, _ := hex.DecodeString(p.ETag)
		sums.Write(b)
		sizes = append(sizes, p.Size)
	}
	meta := info.Meta
	meta.ETag = fmt.Sprintf("%s-%d", hex.EncodeToString(sums.Sum(nil)), len(chosen))
	meta.Parts = sizes
	meta.Checksums = nil
	if err := u.commit(r.ctx, bdir, rel, &meta); err != nil {
		return err
	}
	s.st.removeUpload(dir)
	return writeXML(r.ctx, completeResult{Xmlns: s3NS, Location: "/" + r.bucket + "/" + r.key, Bucket: r.bucket, Key: r.key, ETag: `"` + meta.ETag + `"`})
}

// abortUpload serves DELETE /bucket/key?uploadId=ID.
func (s *Server) abortUpload(r *request) error {
	if _, err := s.st.checkBucket(r.bucket); err != nil {
		return err
	}
	_, dir, err := s.st.loadUpload(r.bucket, r.key, r.query.Get("uploadId"))
	if err != nil {
		return err
	}
	if err := s.st.removeUpload(dir); err != nil {
		return err
	}
	r.ctx.SetStatusCode(204)
	return nil
}

type listPartsResult struct {
	XMLName              xml.Name  `xml:"ListPartsResult"`
	Xmlns                string    `xml:"xmlns,attr"`
	Bucket               string    `xml:"Bucket"`
	Key                  string    `xml:"Key"`
	UploadID             string    `xml:"UploadId"`
	Initiator            owner     `xml:"Initiator"`
	Owner                owner     `xml:"Owner"`
	StorageClass         string    `xml:"StorageClass"`
	PartNumberMarker     int       `xml:"PartNumberMarker"`
	NextPartNumberMarker int       `xml:"NextPartNumberMarker"`
	MaxParts             int       `xml:"MaxParts"`
	IsTruncated          bool      `xml:"IsTruncated"`
	Parts                []partXML `xml:"Part"`
}

type partXML struct {
	PartNumber   int    `xml:"PartNumber"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
}

// listParts serves GET /bucket/key?uploadId=ID.
func (s *Server) listParts(r *request) error {
	if _, err := s.st.checkBucket(r.bucket); err != nil {
		return err
	}
	id := r.query.Get("uploadId")
	info, dir, err := s.st.loadUpload(r.bucket, r.key, id)
	if err != nil {
		return err
	}
	max := 1000
	if v := r.query.Get("max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf("InvalidArgument", "max-parts must be a non-negative integer")
		}
		max = min(n, 1000)
	}
	marker := 0
	if v := r.query.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf("InvalidArgument", "part-number-marker must be a non-negative integer")
		}
		marker = n
	}
	ps, err := s.st.parts(dir)
	if err != nil {
		return err
	}
	o := owner{ID: info.Owner, DisplayName: info.Owner}
	res := listPartsResult{Xmlns: s3NS, Bucket: r.bucket, Key: r.key, UploadID: id, Initiator: o, Owner: o,
		StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: max}
	for _, p := range ps {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == max {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, partXML{PartNumber: p.Number, LastModified: isoTime(p.MTime), ETag: `"` + p.ETag + `"`, Size: p.Size})
		res.NextPartNumberMarker = p.Number
	}
	return writeXML(r.ctx, res)
}

type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	Xmlns              string         `xml:"xmlns,attr"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker"`
	Prefix             string         `xml:"Prefix"`
	Delimiter          string         `xml:"Delimiter,omitempty"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Uploads            []uploadXML    `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

type uploadXML struct {
	Key          string `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	Initiator    owner  `xml:"Initiator"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
	Initiated    string `xml:"Initiated"`
}

// listMultipartUploads serves GET /bucket?uploads.
func (s *Server) listMultipartUploads(r *request) error {
	q := r.query
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	max := 1000
	if v := q.Get("max-uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf("InvalidArgument", "max-uploads must be a non-negative integer")
		}
		max = min(n, 1000)
	}
	keyMarker, idMarker := q.Get("key-marker"), q.Get("upload-id-marker")
	type up struct {
		id   string
		info uploadInfo
	}
	var ups []up
	for _, id := range s.st.uploadsOf(r.bucket) {
		b, err := s.st.readUploadRecord(s.st.uploads + "/" + id)
		if err != nil {
			continue
		}
		var u uploadInfo
		if json.Unmarshal(b, &u) != nil || !strings.HasPrefix(u.Key, prefix) {
			continue
		}
		if u.Key < keyMarker || (u.Key == keyMarker && (idMarker == "" || id <= idMarker)) {
			continue
		}
		ups = append(ups, up{id, u})
	}
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].info.Key != ups[j].info.Key {
			return ups[i].info.Key < ups[j].info.Key
		}
		return ups[i].id < ups[j].id
	})
	res := listUploadsResult{Xmlns: s3NS, Bucket: r.bucket, KeyMarker: keyMarker, UploadIDMarker: idMarker,
		Prefix: prefix, Delimiter: delim, MaxUploads: max}
	seen := map[string]bool{}
	for _, u := range ups {
		if delim != "" {
			if i := strings.Index(u.info.Key[len(prefix):], delim); i >= 0 {
				cp := u.info.Key[:len(prefix)+i+len(delim)]
				if !seen[cp] {
					seen[cp] = true
					res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: cp})
				}
				continue
			}
		}
		if len(res.Uploads) == max {
			res.IsTruncated = true
			break
		}
		o := owner{ID: u.info.Owner, DisplayName: u.info.Owner}
		res.Uploads = append(res.Uploads, uploadXML{Key: u.info.Key, UploadID: u.id, Initiator: o, Owner: o,
			StorageClass: "STANDARD", Initiated: isoTime(time.Unix(0, u.info.Initiated))})
		res.NextKeyMarker, res.NextUploadIDMarker = u.info.Key, u.id
	}
	return writeXML(r.ctx, res)
}

// removeUpload removes the upload directory dir (completed or aborted)
// durably: an upload answered as completed or aborted is not listed again
// after a power cut.
func (st *store) removeUpload(dir string) error {
	if err := st.fs.RemoveAll(dir); err != nil {
		return err
	}
	return st.fs.SyncDir(st.uploads)
}
