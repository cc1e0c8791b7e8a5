# kratos-passkeys, for docker-compose.yml and for production images.
FROM rust:1.89-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kratos-passkeys

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/kratos-passkeys /usr/local/bin/kratos-passkeys
COPY config /etc/kratos-passkeys/config
ENV KRATOS_PASSKEYS_CONFIG_DIR=/etc/kratos-passkeys/config \
    KRATOS_PASSKEYS_ENVIRONMENT=production \
    KRATOS_PASSKEYS_LOG_FORMAT=json
EXPOSE 8080 8081
USER 65534
ENTRYPOINT ["kratos-passkeys"]
CMD ["serve"]
