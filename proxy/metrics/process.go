package metrics

// procFamily is an unlabelled process_* family read at scrape time. When
// the read fails it writes its # HELP and # TYPE lines and no sample,
// rather than a made-up value.
type procFamily struct {
	desc
	read func() (float64, error)
}

func newProcFamily(typ, name, help string, read func() (float64, error)) *procFamily {
	return &procFamily{desc: newDesc(typ, name, help), read: read}
}

func (p *procFamily) describe() *desc { return &p.desc }

func (p *procFamily) appendText(b []byte) []byte {
	b = appendHeader(b, &p.desc)
	v, err := p.read()
	if err != nil {
		return b
	}
	return appendFloatSample(b, p.name, "", nil, "", v)
}
