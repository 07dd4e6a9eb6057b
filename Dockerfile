# Multi-stage build of the same binary `make build` produces.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shopstream ./cmd/shopstream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shopstream /usr/local/bin/shopstream
EXPOSE 3000
ENV LISTEN_ADDR=0.0.0.0:3000
ENTRYPOINT ["/usr/local/bin/shopstream"]
CMD ["serve"]
