# LARA production image, app server only: nginx and Foreman live in the sidecar
# (buildtools/sidecar/, shipped in the package).
# Expensive steps come first; the build metadata comes last so that a new commit, branch or
# tag rebuilds only the final small layers.
#
# Docker Hub may be unreachable, so the base is a build arg (`invoke build` passes the
# configured one). Elsewhere the default works as is.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Pinned here so a CI's RAILS_ENV=test / RACK_ENV=test can never leak into the image.
ENV RAILS_ENV=production \
    RACK_ENV=production \
    LANG=C.UTF-8 \
    BUNDLE_WITHOUT=development:test \
    PORT=3000

# System packages: Ruby, the app server and, for the example app, its gems (Rails 6.1,
# Sprockets, mysql2) from Debian. A real LARA checkout with a Ruby base image passes its own
# list (native gem dependencies) through SYSTEM_PACKAGES.
ARG SYSTEM_PACKAGES="ruby bundler rake unicorn ruby-railties ruby-activerecord ruby-sprockets-rails ruby-mysql2 ca-certificates"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${SYSTEM_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /lara

# Gems before the source, so a source change does not reinstall them. BUNDLE_INSTALL_ARGS
# is "--local" for the example app, whose gems are the Debian packages above.
ARG BUNDLE_INSTALL_ARGS=""
COPY Gemfile Gemfile.lock* ./
RUN bundle install ${BUNDLE_INSTALL_ARGS}

COPY . .
# Precompiling boots the production app, which wants a secret_key_base: a throwaway one for
# this one command only (never in ENV, never in a file). The real one is SECRET_KEY_BASE at
# run time; without it the app makes a random one per process and warns (production.rb).
RUN mkdir -p tmp log \
    && SECRET_KEY_BASE=assets-precompile-only-not-a-secret bin/rails assets:precompile \
    && rm -rf tmp/cache \
    && useradd --system --uid 1000 --home-dir /lara lara \
    && chown -R lara tmp log

EXPOSE 3000
CMD ["bundle", "exec", "unicorn", "-c", "config/unicorn.rb"]
# Ruby is already here: no curl or wget just for this.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ruby -rnet/http -e \
    'exit Net::HTTP.get_response(URI("http://127.0.0.1:#{ENV.fetch("PORT", "3000")}/health")).is_a?(Net::HTTPOK)'

# ---- build metadata: keep below every expensive step ----
ARG LARA_VERSION=unknown
ARG LARA_BRANCH=""
ARG LARA_TAG=""
ARG LARA_COMMIT=""
ARG LARA_BUILD_DATE=""
ARG LARA_BUILD_URL=""
# The exact text `invoke version --format yaml` printed for this build.
ARG LARA_VERSION_YML=""
RUN printf '%s' "${LARA_VERSION_YML}" > /lara/config/version.yml
ENV LARA_VERSION=${LARA_VERSION} \
    LARA_IMAGE_VERSION=${LARA_VERSION} \
    LARA_BRANCH=${LARA_BRANCH} \
    LARA_TAG=${LARA_TAG} \
    LARA_COMMIT=${LARA_COMMIT} \
    LARA_BUILD_DATE=${LARA_BUILD_DATE} \
    LARA_BUILD_URL=${LARA_BUILD_URL}
USER lara
