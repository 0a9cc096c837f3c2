package s3

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"
)

// dispatch routes a request by method, bucket, key and sub-resource.
func (s *Server) dispatch(r *request) error {
	m := string(r.ctx.Method())
	q := r.query
	has := func(k string) bool { _, ok := q[k]; return ok }
	if r.bucket == "" {
		if m == fasthttp.MethodGet {
			return s.listBuckets(r)
		}
		return errorf("MethodNotAllowed", "%s is not allowed on the service", m)
	}
	if r.key == "" {
		switch m {
		case fasthttp.MethodPut:
			switch {
			case has("acl"):
				return s.putBucketACL(r)
			case len(q) > 0:
				return notImplemented(q)
			}
			return s.createBucket(r)
		case fasthttp.MethodHead:
			_, err := s.st.checkBucket(r.bucket)
			return err
		case fasthttp.MethodDelete:
			if len(q) > 0 {
				return notImplemented(q)
			}
			if err := s.st.deleteBucket(r.bucket); err != nil {
				return err
			}
			r.ctx.SetStatusCode(http.StatusNoContent)
			return nil
		case fasthttp.MethodGet:
			if _, err := s.st.checkBucket(r.bucket); err != nil {
				return err
			}
			switch {
			case has("location"):
				return writeXML(r.ctx, locationResult{Xmlns: s3NS})
			case has("versioning"):
				return writeXML(r.ctx, versioningResult{Xmlns: s3NS})
			case has("acl"):
				return s.getACL(r, s.st.bucketPublic(r.bucket))
			case has("uploads"):
				return s.listMultipartUploads(r)
			case has("versions"):
				return s.listObjectVersions(r)
			case q.Get("list-type") == "2":
				return s.listObjectsV2(r)
			case has("policy"):
				return errorf("NoSuchBucketPolicy", "the bucket has no policy")
			case has("lifecycle"):
				return errorf("NoSuchLifecycleConfiguration", "the bucket has no lifecycle configuration")
			case has("cors"):
				return errorf("NoSuchCORSConfiguration", "the bucket has no CORS configuration")
			case has("tagging"):
				return errorf("NoSuchTagSet", "the bucket has no tags")
			case has("encryption"):
				return errorf("ServerSideEncryptionConfigurationNotFoundError", "the bucket has no encryption configuration")
			case has("object-lock"):
				return errorf("ObjectLockConfigurationNotFoundError", "the bucket has no object lock configuration")
			case has("ownershipControls"), has("website"), has("logging"), has("replication"), has("notification"),
				has("requestPayment"), has("accelerate"), has("analytics"), has("metrics"), has("inventory"), has("intelligent-tiering"):
				return notImplemented(q)
			}
			return s.listObjectsV1(r)
		case fasthttp.MethodPost:
			if has("delete") {
				return s.deleteObjects(r)
			}
			return notImplemented(q)
		}
		return errorf("MethodNotAllowed", "%s is not allowed on a bucket", m)
	}
	switch m {
	case fasthttp.MethodPut:
		switch {
		case has("uploadId") || has("partNumber"):
			return s.uploadPart(r)
		case has("acl"), has("tagging"), has("retention"), has("legal-hold"):
			return notImplemented(q)
		}
		return s.putObject(r)
	case fasthttp.MethodGet:
		switch {
		case has("uploadId"):
			return s.listParts(r)
		case has("acl"):
			if err := s.st.checkObject(r.ctx, r.bucket, r.key); err != nil {
				return err
			}
			return s.getACL(r, s.st.bucketPublic(r.bucket))
		case has("tagging"), has("retention"), has("legal-hold"), has("attributes"), has("torrent"):
			return notImplemented(q)
		}
		return s.getObject(r, false)
	case fasthttp.MethodHead:
		return s.getObject(r, true)
	case fasthttp.MethodDelete:
		if has("uploadId") {
			return s.abortUpload(r)
		}
		if has("tagging") {
			return notImplemented(q)
		}
		return s.deleteObject(r)
	case fasthttp.MethodPost:
		switch {
		case has("uploads"):
			return s.createUpload(r)
		case has("uploadId"):
			return s.completeUpload(r)
		}
		return notImplemented(q)
	}
	return errorf("MethodNotAllowed", "%s is not allowed on an object", m)
}

// notImplemented answers a sub-resource this server does not serve.
func notImplemented(q map[string][]string) error {
	var names []string
	for k := range q {
		names = append(names, k)
	}
	return errorf("NotImplemented", "this server does not implement the request's sub-resource (%s)", strings.Join(names, ", "))
}

type bucketsResult struct {
	XMLName xml.Name    `xml:"ListAllMyBucketsResult"`
	Xmlns   string      `xml:"xmlns,attr"`
	Owner   owner       `xml:"Owner"`
	Buckets []bucketXML `xml:"Buckets>Bucket"`
}

type bucketXML struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
}

func (s *Server) listBuckets(r *request) error {
	if r.auth.Anonymous {
		return errorf("AccessDenied", "listing buckets needs credentials")
	}
	names, err := s.st.listBuckets()
	if err != nil {
		return err
	}
	res := bucketsResult{Xmlns: s3NS, Owner: owner{ID: r.auth.AccessKey, DisplayName: r.auth.AccessKey}}
	for _, n := range names {
		_, created := s.st.bucketMeta(n)
		res.Buckets = append(res.Buckets, bucketXML{Name: n, CreationDate: isoTime(created)})
	}
	return writeXML(r.ctx, res)
}

type createBucketConfig struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// cannedACL reads x-amz-acl: public-read (or public-read-write, taken as
// public-read: anonymous writes are never allowed) or private.
func cannedACL(h *fasthttp.RequestHeader) (public bool, err error) {
	switch v := string(h.Peek("x-amz-acl")); v {
	case "", "private", "bucket-owner-full-control", "bucket-owner-read", "authenticated-read":
		return false, nil
	case "public-read", "public-read-write":
		return true, nil
	default:
		return false, errorf("InvalidArgument", "x-amz-acl %q is not a canned ACL", v)
	}
}

func (s *Server) createBucket(r *request) error {
	public, err := cannedACL(&r.ctx.Request.Header)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(bodyReader(r.ctx), 64<<10))
	if err != nil {
		return errorf("IncompleteBody", "reading the request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var cfg createBucketConfig
		if err := parseXML(body, &cfg); err != nil {
			return err
		}
	}
	if err := s.st.createBucket(r.bucket, public); err != nil {
		return err
	}
	r.ctx.Response.Header.Set("Location", "/"+r.bucket)
	return nil
}

func (s *Server) putBucketACL(r *request) error {
	public, err := cannedACL(&r.ctx.Request.Header)
	if err != nil {
		return err
	}
	if len(r.ctx.Request.Header.Peek("x-amz-acl")) == 0 {
		return errorf("NotImplemented", "only canned ACLs (x-amz-acl: private or public-read) are supported")
	}
	return s.st.setBucketPublic(r.bucket, public)
}

type locationResult struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	Xmlns   string   `xml:"xmlns,attr"`
}

type versioningResult struct {
	XMLName xml.Name `xml:"VersioningConfiguration"`
	Xmlns   string   `xml:"xmlns,attr"`
}

type aclResult struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Xmlns   string   `xml:"xmlns,attr"`
	Owner   owner    `xml:"Owner"`
	Grants  []grant  `xml:"AccessControlList>Grant"`
}

type grant struct {
	Grantee    grantee `xml:"Grantee"`
	Permission string  `xml:"Permission"`
}

type grantee struct {
	XMLNS string `xml:"xmlns:xsi,attr"`
	Type  string `xml:"xsi:type,attr"`
	ID    string `xml:"ID,omitempty"`
	URI   string `xml:"URI,omitempty"`
}

func (s *Server) getACL(r *request, public bool) error {
	const xsi = "http://www.w3.org/2001/XMLSchema-instance"
	res := aclResult{Xmlns: s3NS, Owner: owner{ID: r.auth.AccessKey, DisplayName: r.auth.AccessKey},
		Grants: []grant{{Grantee: grantee{XMLNS: xsi, Type: "CanonicalUser", ID: r.auth.AccessKey}, Permission: "FULL_CONTROL"}}}
	if public {
		res.Grants = append(res.Grants, grant{Grantee: grantee{XMLNS: xsi, Type: "Group", URI: "http://acs.amazonaws.com/groups/global/AllUsers"}, Permission: "READ"})
	}
	return writeXML(r.ctx, res)
}
