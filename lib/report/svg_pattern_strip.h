// A layer pattern drawn as a strip of F/S cells over the layers: F layers keep their indexer,
// S layers reuse the top-k of the nearest F layer before them (hover names which).
#pragma once

#include <string>

#include "layer_pattern.h"
#include "svg_document.h"

namespace indexcache {

// Cells carry class="pattern-cell" and data-layer / data-kind ("F" or "S").
SvgDocument render_pattern_strip(const LayerPattern& pattern, const std::string& title);

}  // namespace indexcache
