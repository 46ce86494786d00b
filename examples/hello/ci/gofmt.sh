#!/bin/sh
# Formatting gate with a zero-warnings policy: every Go file must be gofmt-formatted.
files="$(gofmt -l .)"
if [ -n "$files" ]; then
	echo "not gofmt-formatted (fix with: gofmt -w FILE):"
	echo "$files"
	exit 1
fi
echo "gofmt: every Go file is formatted"
