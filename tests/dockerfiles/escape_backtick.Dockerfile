# escape=`
FROM mcr/windows
RUN dir c:\ `
    /w
COPY a\b c:\dst\
ENV P=C:\Program` Files X=`"q`"
RUN echo `

  done
