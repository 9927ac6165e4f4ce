"""The Lark grammar of the `.rspec` language (LALR(1), contextual lexer).

Keywords are reserved only where the grammar expects them, so ``eps`` or ``labels`` can
still name a parameter. Newlines are not significant; ``#`` starts a comment.
"""

GRAMMAR = r"""
start: _statement*

_statement: param_decl | network_decl | input_decl | labels_decl | decode_decl | region_decl
          | verify_prop | maximize_prop | attack_prop | patch_prop | global_prop

// ---------------------------------------------------------------- declarations
param_decl: "param" NAME "=" expr
network_decl: "network" NAME "=" (onnx_source | compose_source)
onnx_source: "onnx" "(" path ")"
compose_source: "compose" "(" NAME "," NAME ")"
path: STRING -> path_plain
    | "external" STRING -> path_external

input_decl: "input" NAME "=" _input_source domain? reshape?
_input_source: npy_source | png_source | values_source | dataset_source
npy_source: "npy" "(" path ")"
png_source: "png" "(" path ("," colour)? ")"
!colour: "grey" | "rgb"
values_source: "values" "(" expr ")"
dataset_source: "dataset" "(" (npy_source | folder_source) ("," (data_labels | data_targets))* ")"
data_labels: "labels" "=" path
data_targets: "targets" "=" path
folder_source: "folder" "(" path ("," STRING)? ("," colour)? ")"
domain: "in" "[" expr "," expr "]"
reshape: "reshape" expr

labels_decl: "labels" NAME "=" "[" (STRING ("," STRING)*)? "]"

decode_decl: "decode" NAME "as" _decoder "over" NAME
_decoder: argmax_dec | multilabel_dec | topk_dec | ecoc_dec
argmax_dec: "argmax"
multilabel_dec: "multilabel" "(" score ">" expr ")"
!score: "logit" | "sigmoid"
topk_dec: "topk" "(" expr ")"
ecoc_dec: "ecoc" "(" path ")"

region_decl: "region" NAME "=" region

?region: region_term
       | region "|" region_term -> region_union
       | region "-" region_term -> region_difference
?region_term: region_atom
            | region_term "&" region_atom -> region_intersection
?region_atom: box | mask | pixels | region_ref | "(" region ")"
box: "box" "(" (box_dim ("," box_dim)*)? ")"
box_dim: axis expr ":" expr
!axis: "rows" | "cols" | "channels"
mask: "mask" "(" path ")"
pixels: "pixels" "(" NAME cmp expr ")"
region_ref: NAME
rings: "rings" "(" region "," metric "," expr ")"
!metric: "chebyshev" | "manhattan" | "euclidean"

// ---------------------------------------------------------------- perturbation sets
_pset: linf_set | layered_set
linf_set: "linf" "(" NAME "," expr ("," "inside" region)? ")"
layered_set: "layered" "(" NAME "," rings ("," "eps" "=" expr)? ")"

// ---------------------------------------------------------------- properties
on_net: "on" NAME
verify_prop: "verify" NAME on_net? ":" "forall" VAR "in" _pset ":" cond
maximize_prop: _maximize_head cond weights? "method" _search
_maximize_head: "maximize" NAME on_net? ":" layered_set "such" "that"
weights: "weights" expr
_search: naive_search | oracle_search
naive_search: "naive" options?
oracle_search: "oracle" ("(" (oracle_arg ("," oracle_arg)*)? ")")?
?oracle_arg: option | "cutting" "=" cutting -> cutting_arg
!cutting: "fixed" | "sensitivity"
options: "(" (option ("," option)*)? ")"
option: NAME "=" expr

attack_prop: _attack_head "using" attack_method "norm" norm within?
_attack_head: "attack" NAME on_net? ":" _goal "from" NAME
_goal: target_labels | target_vector | flip_labels | untargeted
target_labels: "target" "{" (expr ("," expr)*)? "}"
target_vector: "target" expr
flip_labels: "flip" expr "labels"
untargeted: "untargeted"
attack_method: attack_kind options?
!attack_kind: "jma" | "mlcw" | "pgd"
!norm: "l0" | "l1" | "l2" | "linf"
within: "within" _pset

patch_prop: _patch_head cond "for" NAME ("," NAME)* "minimize" norm adversarial?
_patch_head: "patch" NAME on_net? ":" "layer" expr "such" "that"
adversarial: "then" "adversarial" options

global_prop: "global" NAME "on" NAME ":" "noise" noise "class" expr criterion
noise: noise_kind "(" expr "," expr ")"
!noise_kind: "normal" | "uniform"
criterion: criterion_kind options
!criterion_kind: "correct" | "robust"

// ---------------------------------------------------------------- conditions
?cond: or_cond
?or_cond: and_cond ("or" and_cond)*
?and_cond: not_cond ("and" not_cond)*
?not_cond: "not" not_cond -> not_
         | atom_cond
?atom_cond: "present" "(" expr ")" -> present
          | "absent" "(" expr ")" -> absent
          | "unchanged" -> unchanged
          | "labels" "==" "{" (expr ("," expr)*)? "}" -> label_set
          | "argmax" "==" expr -> argmax_is
          | linexpr cmp linexpr -> linear
          | "(" cond ")"
linexpr: sign? linterm (sign linterm)*
!sign: "+" | "-"
linterm: coef "*" output -> scaled_term
       | output -> output_term
       | coef -> const_term
?coef: NUMBER -> number
     | NAME -> ref
output: "y" "[" expr "]"
!cmp: ">=" | "<=" | ">" | "<" | "=="

// ---------------------------------------------------------------- expressions
?expr: sum
?sum: product
    | sum "+" product -> add
    | sum "-" product -> sub
?product: unary
        | product "*" unary -> mul
        | product "/" unary -> div
?unary: atom
      | "-" unary -> neg
?atom: NUMBER -> number
     | NAME -> ref
     | STRING -> string
     | NAME "." "label" -> data_label
     | NAME "." "target" -> data_target
     | "[" (expr ("," expr)*)? "]" -> list
     | "(" expr ")"

VAR: /[A-Za-z_][A-Za-z0-9_]*'*/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?/
STRING: /"([^"\\\n]|\\["\\n])*"/
COMMENT: /#[^\n]*/

%import common.WS
%ignore WS
%ignore COMMENT
"""
