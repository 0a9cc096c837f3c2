package fuse

import "engine/burstbuffer"

// Data is the burst buffer as the mount sees it (burstbuffer.Data).
type Data = burstbuffer.Data
