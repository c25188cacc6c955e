FROM busybox
RUN echo a \
  b
	copy	x  y
RUN \
  # only comment

  ls
ENV k "quoted value"  tail
label a=b
RUN echo \\
RUN echo ok
ONBUILD RUN <<EOF
echo in trigger
EOF
RUN 3<<EOF cat /proc/self/fd/3 <<EOT
fd three
EOF
second
EOT
