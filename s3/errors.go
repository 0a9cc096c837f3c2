package s3

import (
	"encoding/xml"
	"fmt"
	"net/http"
)

// Error is an S3 error: a code from the S3 API, the HTTP status it goes
// with, and a message for people. Handlers return it; the server writes it
// as the S3 XML error body.
type Error struct {
	Code    string
	Status  int
	Message string
	// Resource is the bucket or object the request named, if any.
	Resource string
	// HeadersNotSigned names, comma-separated, the headers an
	// AccessDenied refused because the signature does not cover them.
	HeadersNotSigned string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorStatus is the HTTP status of every error code the server returns.
var errorStatus = map[string]int{
	"AccessDenied":                         http.StatusForbidden,
	"AuthorizationHeaderMalformed":         http.StatusBadRequest,
	"AuthorizationQueryParametersError":    http.StatusBadRequest,
	"BadDigest":                            http.StatusBadRequest,
	"BucketAlreadyExists":                  http.StatusConflict,
	"BucketAlreadyOwnedByYou":              http.StatusConflict,
	"BucketNotEmpty":                       http.StatusConflict,
	"EntityTooLarge":                       http.StatusBadRequest,
	"EntityTooSmall":                       http.StatusBadRequest,
	"IncompleteBody":                       http.StatusBadRequest,
	"InternalError":                        http.StatusInternalServerError,
	"InvalidAccessKeyId":                   http.StatusForbidden,
	"InvalidArgument":                      http.StatusBadRequest,
	"InvalidBucketName":                    http.StatusBadRequest,
	"InvalidDigest":                        http.StatusBadRequest,
	"InvalidPart":                          http.StatusBadRequest,
	"InvalidPartNumber":                    http.StatusRequestedRangeNotSatisfiable,
	"InvalidPartOrder":                     http.StatusBadRequest,
	"InvalidRange":                         http.StatusRequestedRangeNotSatisfiable,
	"InvalidRequest":                       http.StatusBadRequest,
	"KeyTooLongError":                      http.StatusBadRequest,
	"MalformedXML":                         http.StatusBadRequest,
	"MethodNotAllowed":                     http.StatusMethodNotAllowed,
	"MissingContentLength":                 http.StatusLengthRequired,
	"MissingSecurityHeader":                http.StatusBadRequest,
	"NoSuchBucket":                         http.StatusNotFound,
	"NoSuchBucketPolicy":                   http.StatusNotFound,
	"NoSuchCORSConfiguration":              http.StatusNotFound,
	"NoSuchLifecycleConfiguration":         http.StatusNotFound,
	"NoSuchTagSet":                         http.StatusNotFound,
	"ObjectLockConfigurationNotFoundError": http.StatusNotFound,
	"ServerSideEncryptionConfigurationNotFoundError": http.StatusNotFound,
	"NoSuchKey":                    http.StatusNotFound,
	"NoSuchUpload":                 http.StatusNotFound,
	"NotImplemented":               http.StatusNotImplemented,
	"PreconditionFailed":           http.StatusPreconditionFailed,
	"RequestHeaderSectionTooLarge": http.StatusBadRequest,
	"RequestTimeTooSkewed":         http.StatusForbidden,
	"SignatureDoesNotMatch":        http.StatusForbidden,
	"SlowDown":                     http.StatusServiceUnavailable,
	"XAmzContentSHA256Mismatch":    http.StatusBadRequest,
}

// errorf returns an *Error with code, its status, and a message.
func errorf(code, format string, args ...any) *Error {
	st, ok := errorStatus[code]
	if !ok {
		panic("s3: unknown error code " + code)
	}
	return &Error{Code: code, Status: st, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the XML body of an error response.
type errorBody struct {
	XMLName  xml.Name `xml:"Error"`
	Code     string   `xml:"Code"`
	Message  string   `xml:"Message"`
	Resource string   `xml:"Resource,omitempty"`
	// HeadersNotSigned is AccessDenied's list of unsigned headers.
	HeadersNotSigned string `xml:"HeadersNotSigned,omitempty"`
	RequestID        string `xml:"RequestId"`
}
