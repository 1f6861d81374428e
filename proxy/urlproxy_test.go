package proxy

import (
	"net/http"
	"net/url"
)

type urlURL struct{ s string }

func (u *urlURL) proxy(*http.Request) (*url.URL, error) { return url.Parse(u.s) }
