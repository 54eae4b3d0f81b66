module blockmirror.io/pause

go 1.22
