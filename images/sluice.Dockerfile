# The coordinator, the router and the example app: static binaries, nothing else.
FROM scratch
COPY sluice app /
ENTRYPOINT ["/sluice"]
CMD ["--help"]
