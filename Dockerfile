# Multi-stage build of the same binary `make build` produces.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .dockerignore leaves .git out of the context, so the version comes from here
# (`shopstream version` also prints the Go version the build used).
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shopstream ./cmd/shopstream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shopstream /usr/local/bin/shopstream
EXPOSE 3000
ENV LISTEN_ADDR=0.0.0.0:3000
# Exec form: the image has no shell. `health --ready` GETs /readyz on
# LISTEN_ADDR (loopback): healthy while the database answers and the listener
# is connected; a failing check prints why (docker inspect shows it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
	CMD ["/usr/local/bin/shopstream", "health", "--ready"]
ENTRYPOINT ["/usr/local/bin/shopstream"]
CMD ["serve"]
