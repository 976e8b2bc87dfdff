module spdystream-peer

go 1.19

require github.com/moby/spdystream v0.2.0

// Debian's golang-github-docker-spdystream-dev (no module proxy needed).
replace github.com/moby/spdystream => /usr/share/gocode/src/github.com/moby/spdystream
