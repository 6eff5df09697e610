# Static, cgo-free build; the runtime image has no shell and runs as nobody.
#   docker build -t rampart .
#   docker run -v /etc/rampart:/etc/rampart:ro -v rampart-state:/var/lib/rampart \
#     -p 443:8443 -p 80:8080 rampart serve -c /etc/rampart/rampart.yaml
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/rampart ./cmd/rampart

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rampart /usr/local/bin/rampart
USER nonroot:nonroot
VOLUME ["/var/lib/rampart"]
EXPOSE 8443 8080 9090
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["serve", "-c", "/etc/rampart/rampart.yaml"]
