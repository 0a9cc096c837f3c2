package httpx

import (
	"strings"
)

// Negotiate picks the content coding to send (RFC 9110 §12.5.3) from an
// Accept-Encoding value among offered, the codings available in server
// preference order (e.g. "br", "gzip"). It returns one of offered, or
// "identity" for no coding, and ok=false when nothing is acceptable (the
// caller may answer 406 or send identity anyway).
//
//   - An absent or empty Accept-Encoding → "identity".
//   - A coding's weight is its own q, else that of "*", else it is not
//     acceptable; q=0 means not acceptable. Names are case-insensitive and
//     x-gzip/x-compress equal gzip/compress (RFC 9110 §8.4.1). When a
//     coding is listed twice, the first entry counts. Elements with an
//     invalid q (not 0–1 with at most three decimals) are ignored.
//   - The highest weight wins; ties go to the earlier offered coding.
//   - identity takes part with its own q or that of "*"; when neither is
//     listed it stays acceptable but ranks below every acceptable coding,
//     so "identity;q=0" or "*;q=0" is needed to exclude it. Unless
//     offered lists "identity" at some position, it is tried last.
//
// It does not allocate for up to 8 offered codings.
func Negotiate(acceptEncoding string, offered ...string) (coding string, ok bool) {
	ae := trimOWS(acceptEncoding)
	if ae == "" {
		return "identity", true
	}
	var qbuf [8]int
	qs := qbuf[:0]
	if len(offered) <= len(qbuf) {
		qs = qbuf[:len(offered)]
	} else {
		qs = make([]int, len(offered))
	}
	for i := range qs {
		qs[i] = -1
	}
	star, ident := -1, -1
	for s := ae; s != ""; {
		var elem string
		if i := strings.IndexByte(s, ','); i >= 0 {
			elem, s = s[:i], s[i+1:]
		} else {
			elem, s = s, ""
		}
		name, q, ok := parseCoding(elem)
		if !ok {
			continue
		}
		switch {
		case name == "*":
			if star < 0 {
				star = q
			}
		case strings.EqualFold(name, "identity"):
			if ident < 0 {
				ident = q
			}
		default:
			for i, o := range offered {
				if qs[i] < 0 && sameCoding(o, name) {
					qs[i] = q
				}
			}
		}
	}
	// identity's weight; 0 with identOK means "implicitly acceptable, last".
	identQ, identOK := ident, ident > 0
	switch {
	case ident >= 0:
	case star >= 0:
		identQ, identOK = star, star > 0
	default:
		identQ, identOK = 0, true
	}
	best, bestQ, identSeen := "", -1, false
	for i, o := range offered {
		q, acceptable := qs[i], false
		switch {
		case strings.EqualFold(o, "identity"):
			identSeen = true
			q, acceptable = identQ, identOK
		case o == "":
			continue
		case q >= 0:
			acceptable = q > 0
		case star >= 0:
			q, acceptable = star, star > 0
		}
		if acceptable && q > bestQ {
			best, bestQ = o, q
		}
	}
	if !identSeen && identOK && identQ > bestQ {
		best, bestQ = "identity", identQ
	}
	if bestQ < 0 {
		return "", false
	}
	return best, true
}

// sameCoding compares content-coding names case-insensitively, with the
// x-gzip and x-compress aliases.
func sameCoding(offered, name string) bool {
	if strings.EqualFold(offered, name) {
		return true
	}
	if len(name) > 2 && (name[0] == 'x' || name[0] == 'X') && name[1] == '-' {
		n := name[2:]
		return (strings.EqualFold(n, "gzip") || strings.EqualFold(n, "compress")) && strings.EqualFold(offered, n)
	}
	return false
}

// parseCoding parses one Accept-Encoding element:
// codings *( OWS ";" OWS param ), where the q param is the weight
// (RFC 9110 §12.4.2) in thousandths. Other params are skipped.
func parseCoding(elem string) (name string, q int, ok bool) {
	s := trimOWS(elem)
	j := tokenEnd(s, 0)
	if j == 0 {
		return "", 0, false
	}
	name, s, q = s[:j], s[j:], 1000
	for {
		s = trimOWS(s)
		if s == "" {
			return name, q, true
		}
		if s[0] != ';' {
			return "", 0, false
		}
		s = trimOWS(s[1:])
		j = tokenEnd(s, 0)
		pname := s[:j]
		s = s[j:]
		if pname == "" || s == "" || s[0] != '=' {
			return "", 0, false
		}
		s = s[1:]
		var val string
		if s != "" && s[0] == '"' {
			v, end, ok := parseQuoted(s, 0)
			if !ok {
				return "", 0, false
			}
			val, s = v, s[end:]
		} else {
			j = tokenEnd(s, 0)
			val, s = s[:j], s[j:]
		}
		if pname == "q" || pname == "Q" {
			if q, ok = parseQValue(val); !ok {
				return "", 0, false
			}
		}
	}
}

// parseQValue parses qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
// into thousandths.
func parseQValue(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' || len(s) > 5 {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || (q == 1000 && c != '0') {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	return q, true
}

// Compressible reports whether a response of media type contentType is
// worth compressing: text/* (except text/event-stream, which is streamed),
// any +json, +xml or +yaml type (image/svg+xml, application/ld+json, ...),
// JSON, JavaScript, XML, YAML, WebAssembly, uncompressed fonts (ttf, otf,
// eot) and icons/bitmaps. Images, audio, video, archives, woff/woff2,
// application/octet-stream and unknown types are not.
func Compressible(contentType string) bool {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = trimOWS(mt)
	slash := strings.IndexByte(mt, '/')
	if slash <= 0 || slash == len(mt)-1 {
		return false
	}
	typ, sub := mt[:slash], mt[slash+1:]
	if strings.EqualFold(typ, "text") {
		return !strings.EqualFold(sub, "event-stream")
	}
	if plus := strings.LastIndexByte(sub, '+'); plus >= 0 {
		switch suffix := sub[plus+1:]; {
		case strings.EqualFold(suffix, "json"), strings.EqualFold(suffix, "xml"), strings.EqualFold(suffix, "yaml"):
			return true
		}
	}
	var list []string
	switch {
	case strings.EqualFold(typ, "application"):
		list = compressibleApplication
	case strings.EqualFold(typ, "font"):
		list = compressibleFont
	case strings.EqualFold(typ, "image"):
		list = compressibleImage
	}
	for _, s := range list {
		if strings.EqualFold(sub, s) {
			return true
		}
	}
	return false
}

var (
	compressibleApplication = []string{
		"json", "x-ndjson", "javascript", "x-javascript", "ecmascript", "x-ecmascript",
		"xml", "wasm", "yaml", "x-yaml", "graphql", "sql", "rtf", "postscript",
		"x-sh", "x-csh", "x-tex", "x-www-form-urlencoded", "manifest",
		"vnd.ms-fontobject", "x-font-ttf", "x-font-otf", "x-font-truetype", "x-font-opentype", "font-sfnt",
	}
	compressibleFont  = []string{"ttf", "otf", "sfnt", "collection"}
	compressibleImage = []string{"x-icon", "vnd.microsoft.icon", "bmp", "x-ms-bmp"}
)
