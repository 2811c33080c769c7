# A small static image of VulnZero. Nothing is pulled: the build stage is
# made from the local Go toolchain's output, so `docker build` works on a
# machine without a registry. Build the binary first (make build) or use
# `make docker`, which does both.
#
#   make build && docker build -t vulnzero .
#
# The final stage is FROM scratch: the binary is static (CGO_ENABLED=0, pure-Go
# SQLite), and git operations use go-git, so no shell or git is needed at run
# time. CA certificates for GitHub/Postgres TLS are copied from the build host.
FROM scratch
COPY bin/vulnzero /vulnzero
COPY docker/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY docker/passwd /etc/passwd
USER 65532:65532
ENV VZ_DATA_DIR=/data HOME=/data VZ_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/vulnzero"]
CMD ["serve"]
