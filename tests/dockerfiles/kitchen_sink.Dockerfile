# syntax=docker/dockerfile:1
ARG BASE=alpine
ARG V
FROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build
  run  echo hi \
  # comment inside
   there
RUN ["echo", "a b"]
RUN [bad
RUN <<EOF
echo a
EOF
RUN <<-"EOT" bash
	echo $x
	EOT
COPY --from=build --chown=1:1 a b /dst/
COPY ["a b", "/c"]
ADD --link --chmod=755 x /y
ENV A=1 B="two words" C=three\ x
ENV LEGACY some value here
LABEL "k"="v" k2=v2
EXPOSE 80/tcp 443
VOLUME ["/data"]
VOLUME /a /b
USER app:app
WORKDIR /srv/$A
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo trigger
ONBUILD COPY ["a","b"]
ENTRYPOINT ["/bin/app"]
CMD echo "hi"
MAINTAINER me
ARG X=1 Y
FROM scratch
COPY <<EOF /etc/conf
hello $USER
EOF
