// @ts-check
/**
 * A TypeDoc plugin for qlr's API reference, so that `npm run docs` can
 * require a comment on every name qlr exports without asking for comments on
 * effect's machinery:
 *
 * - It leaves out the static members a class of ours inherits from effect
 *   (Schema.Class's `fields`, `extend`, `transformOrFail`, ...; Context.Tag's
 *   `Service`, `of`, `key`, ...). They are effect's API, documented by effect;
 *   listing them on every config, event and service class would bury ours.
 *   Instance members (a Schema class's fields) and everything declared in qlr
 *   stay.
 * - It describes the `default` thunks of `Schema.optionalWith(..., { default })`
 *   that appear inside the expanded types of schema constants
 *   (`StateDiscretisation`, `PolicyConfig`, ...): TypeDoc does not read
 *   comments there, and the field's own comment states the default.
 */
import { Comment, Converter, ReflectionKind, ReflectionType } from "typedoc"

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const project = context.project
    for (const owner of project.getReflectionsByKind(ReflectionKind.Class)) {
      for (const member of [...(owner.children ?? [])]) {
        const declaredIn = project.getSymbolIdFromReflection(member)?.packageName
        if (member.flags.isStatic && declaredIn !== undefined && declaredIn !== "qlr") project.removeReflection(member)
      }
    }
    for (const property of project.getReflectionsByKind(ReflectionKind.Property)) {
      const isDefaultThunk =
        property.name === "default" &&
        property.parent?.kindOf(ReflectionKind.TypeLiteral) === true &&
        property.type instanceof ReflectionType &&
        property.type.declaration.signatures?.length === 1
      if (isDefaultThunk && !property.hasComment())
        property.comment = new Comment([{ kind: "text", text: "Computes the field's default value (Schema.optionalWith)." }])
    }
  })
}
